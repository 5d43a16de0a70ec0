""".env.example and README's table list every variable the code reads, with the defaults
the code has: a setting added without them fails here, so neither can drift."""

from __future__ import annotations

import re
from pathlib import Path

from dotenv import dotenv_values

from sora2.config import Settings, env_names

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
# any other read of the environment in the code, e.g. os.environ["X"], os.getenv("X")
READS = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*["']([A-Z][A-Z0-9_]+)["']""")


def variables_the_code_reads() -> set[str]:
    names = set(env_names().values())
    for path in (ROOT / "src").rglob("*.py"):
        names.update(READS.findall(path.read_text()))
    return names


def test_every_variable_the_code_reads_is_in_env_example() -> None:
    listed = set(dotenv_values(EXAMPLE))
    missing = sorted(variables_the_code_reads() - listed)
    assert not missing, f"add to .env.example (with the default): {', '.join(missing)}"
    stale = sorted(listed - variables_the_code_reads())
    assert not stale, f".env.example lists variables nothing reads: {', '.join(stale)}"


def test_every_variable_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = sorted(variables_the_code_reads() - documented)
    assert not missing, f"add to README's configuration table: {', '.join(missing)}"


def test_env_example_as_a_dotenv_gives_the_defaults(tmp_path: Path) -> None:
    """Copied to .env unchanged, it changes nothing but the (refused) example secrets."""
    env = {"SORA2_VAR_DIR": str(tmp_path / "var")}
    from_example = Settings.from_env(env, dotenv=EXAMPLE)
    defaults = Settings.from_env(env, dotenv=tmp_path / "absent.env")
    # the example secrets are refused, so both fall back to the same generated ones
    assert from_example == defaults
    assert from_example.jwt_secret not in EXAMPLE.read_text()
