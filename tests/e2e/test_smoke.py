def test_register_then_profile(api):
    user, token = api.register("alice")
    with api.client(token) as c:
        r = c.get("/api/users/profile")
        assert r.status_code == 200
        assert r.json()["email"] == "alice@example.com"
        assert c.get("/api/credits/balance").json() == {"balance": 10}
