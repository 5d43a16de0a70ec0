"""Rules across aggregates: every entry is justified by the video or order it names.

Each CONSUME charges a requested video of the same user at its cost, once; each REFUND
gives back a FAILED or CANCELLED video's charge, once, and no such video stays charged;
each Settled makes final a video that COMPLETED (its Completed event is in the log); each
RECHARGE credits a paid order of the same user and credits, once, and every paid order is
credited; each REVERSAL takes back a REFUNDED order's recharge.
"""

from __future__ import annotations

from sora2.application.audit.fold import Entry, Fold, OrderFacts, VideoFacts, show_id
from sora2.application.audit.report import Problem

REFUNDABLE = ("FAILED", "CANCELLED")


def check_rules(fold: Fold) -> list[Problem]:
    problems: list[Problem] = []
    for video_id, video in fold.videos.items():
        if not _video_is_plain(video):
            problems += _video_rules(show_id(video_id), video)
    for order_id, order in fold.orders.items():
        if not _order_is_plain(order):
            problems += _order_rules(show_id(order_id), order)
    return problems


def _video_is_plain(video: VideoFacts) -> bool:
    """The common cases, checked without making a message: requested and charged once at
    its cost, then either still running, completed and settled once, or failed/cancelled
    and refunded once in full."""
    if video.status is None or len(video.reserved) != 1:
        return False
    charge = video.reserved[0]
    if charge.user != video.user or -charge.amount != video.cost:
        return False
    if video.refunded:
        refund = video.refunded[0]
        return (
            len(video.refunded) == 1
            and not video.settled
            and video.status in REFUNDABLE
            and refund.user == charge.user
            and refund.amount == -charge.amount
            and refund.position > charge.position
        )
    if video.status in REFUNDABLE:
        return False
    if video.settled:
        return (
            video.completed
            and video.status == "COMPLETED"
            and all(user == charge.user for _, user in video.settled)
        )
    return True


def _order_is_plain(order: OrderFacts) -> bool:
    """Created, and either unpaid and uncredited, or paid once and credited once in full
    (and, if refunded, reversed once in full)."""
    if order.status is None:
        return False
    if not order.paid:
        return not order.recharges and not order.reversals
    if order.paid != 1 or len(order.recharges) != 1:
        return False
    recharge = order.recharges[0]
    if recharge.user != order.user or recharge.amount != order.credits:
        return False
    if not order.reversals:
        return order.status != "REFUNDED"
    reversal = order.reversals[0]
    return (
        len(order.reversals) == 1
        and order.status == "REFUNDED"
        and reversal.user == order.user
        and -reversal.amount == order.credits
        and reversal.position > recharge.position
    )


def _rule(message: str, at: Entry | int | None = None) -> Problem:
    return Problem("rule", message, at.position if isinstance(at, Entry) else at)


def _ids(entries: list[Entry]) -> str:
    return ", ".join(str(e.id) for e in entries)


def _video_rules(video_id: str, video: VideoFacts) -> list[Problem]:
    problems = []
    for entry in video.reserved:
        who = f"user {show_id(entry.user)}: CONSUME entry {entry.id} for video {video_id}"
        if video.status is None:
            problems.append(_rule(f"{who}: no such video was requested", entry))
        elif video.user != entry.user:
            problems.append(_rule(f"{who}: the video belongs to user {show_id(video.user)}", entry))
        elif video.cost != -entry.amount:
            problems.append(
                _rule(f"{who}: charges {-entry.amount} but the video costs {video.cost}", entry)
            )
    if len(video.reserved) > 1:
        problems.append(
            _rule(f"video {video_id}: charged {len(video.reserved)} times ({_ids(video.reserved)})")
        )
    state = video.status or "unknown (never requested)"
    for entry in video.refunded:
        who = f"user {show_id(entry.user)}: REFUND entry {entry.id} for video {video_id}"
        charge = next((r for r in video.reserved if r.user == entry.user), None)
        if charge is None:
            problems.append(_rule(f"{who}: the video was never charged to this user", entry))
        elif charge.position > entry.position:
            problems.append(_rule(f"{who}: refunded before it was charged", entry))
        elif -charge.amount != entry.amount:
            problems.append(
                _rule(f"{who}: refunds {entry.amount} but {-charge.amount} were charged", entry)
            )
        if video.status not in REFUNDABLE:
            problems.append(_rule(f"{who}: the video is {state}, not FAILED or CANCELLED", entry))
    if len(video.refunded) > 1:
        problems.append(
            _rule(
                f"video {video_id}: refunded {len(video.refunded)} times ({_ids(video.refunded)})"
            )
        )
    if video.status in REFUNDABLE and video.reserved and not video.refunded:
        problems.append(
            _rule(
                f"user {show_id(video.user)}: video {video_id} is {video.status} but its "
                f"{-video.reserved[0].amount} credits were never refunded"
            )
        )
    for position, user in video.settled:
        who = f"user {show_id(user)}: Settled (event {position}) for video {video_id}"
        if not video.completed:
            problems.append(
                _rule(
                    f"{who}: the log has no Completed event for it (the video is {state})", position
                )
            )
        elif video.status != "COMPLETED":
            problems.append(_rule(f"{who}: the video is {state}, not COMPLETED", position))
        if not any(r.user == user for r in video.reserved):
            problems.append(_rule(f"{who}: the video was never charged to this user", position))
    return problems


def _order_rules(order_id: str, order: OrderFacts) -> list[Problem]:
    problems = []
    if order.paid > 1:
        problems.append(_rule(f"order {order_id}: paid {order.paid} times"))
    for entry in order.recharges:
        who = f"user {show_id(entry.user)}: RECHARGE entry {entry.id} for order {order_id}"
        if order.status is None:
            problems.append(_rule(f"{who}: no such order exists", entry))
            continue
        if order.user != entry.user:
            problems.append(_rule(f"{who}: the order belongs to user {show_id(order.user)}", entry))
        if order.credits != entry.amount:
            problems.append(
                _rule(f"{who}: credits {entry.amount} but the order is for {order.credits}", entry)
            )
        if not order.paid:
            problems.append(_rule(f"{who}: the order was never paid (it is {order.status})", entry))
    if len(order.recharges) > 1:
        problems.append(
            _rule(
                f"order {order_id}: recharged {len(order.recharges)} times "
                f"({_ids(order.recharges)})"
            )
        )
    if order.paid and not order.recharges:
        problems.append(
            _rule(
                f"user {show_id(order.user)}: order {order_id} is paid but its "
                f"{order.credits} credits were never recharged"
            )
        )
    for entry in order.reversals:
        who = f"user {show_id(entry.user)}: REVERSAL entry {entry.id} for order {order_id}"
        if order.status is None:
            problems.append(_rule(f"{who}: no such order exists", entry))
            continue
        if order.user != entry.user:
            problems.append(_rule(f"{who}: the order belongs to user {show_id(order.user)}", entry))
        if order.credits != -entry.amount:
            problems.append(
                _rule(f"{who}: takes back {-entry.amount} but {order.credits} were credited", entry)
            )
        if order.status != "REFUNDED":
            problems.append(
                _rule(f"{who}: the order was never refunded (it is {order.status})", entry)
            )
        if not any(r.position < entry.position for r in order.recharges):
            problems.append(_rule(f"{who}: the order was never recharged before it", entry))
    if order.status == "REFUNDED" and order.recharges and not order.reversals:
        problems.append(
            _rule(
                f"user {show_id(order.user)}: order {order_id} is REFUNDED but its "
                f"{order.credits} credits were never taken back (no REVERSAL)"
            )
        )
    if len(order.reversals) > 1:
        problems.append(
            _rule(
                f"order {order_id}: reversed {len(order.reversals)} times ({_ids(order.reversals)})"
            )
        )
    return problems
