"""The read planner, sans-IO: points in, requests out; cuts learned from refusals."""

from __future__ import annotations

from plantd_drivers.modbus._planner import Item, Learned, Limits, Request, plan


def items(*spans: tuple[int, int]) -> list[Item]:
    return [Item(key, address, size) for key, (address, size) in enumerate(spans)]


def spans(requests: list[Request]) -> list[tuple[int, int]]:
    return [(r.address, r.count) for r in requests]


LIMITS = Limits(max_count=125, max_gap=4)


def test_contiguous_points_make_one_request() -> None:
    requests = plan(1, "holding", items((0, 2), (2, 2), (4, 1), (5, 4)), LIMITS)
    assert spans(requests) == [(0, 9)]
    assert requests[0].function == 3
    assert requests[0].holes() == 0


def test_near_contiguous_points_merge_across_small_holes_only() -> None:
    requests = plan(1, "input", items((0, 2), (6, 2), (20, 1)), LIMITS)
    assert spans(requests) == [(0, 8), (20, 1)]  # hole of 4 bridged, hole of 12 not
    assert requests[0].holes() == 4
    assert requests[0].function == 4


def test_max_count_splits_long_runs_without_splitting_a_point() -> None:
    requests = plan(1, "holding", items(*((a, 2) for a in range(0, 300, 2))), LIMITS)
    assert spans(requests) == [(0, 124), (124, 124), (248, 52)]
    assert all(r.count <= 125 for r in requests)


def test_order_of_points_does_not_matter_and_overlaps_share_registers() -> None:
    requests = plan(1, "holding", items((10, 2), (0, 1), (10, 1), (11, 1), (1, 6)), LIMITS)
    assert spans(requests) == [(0, 12)]
    assert sorted(item.key for item in requests[0].items) == [0, 1, 2, 3, 4]


def test_bits_are_planned_with_their_own_limits() -> None:
    requests = plan(1, "coil", items((0, 1), (60, 1), (200, 1)), Limits(2000, 64))
    assert spans(requests) == [(0, 61), (200, 1)]
    assert requests[0].function == 1


def test_zero_gap_merges_only_touching_points() -> None:
    requests = plan(1, "holding", items((0, 1), (1, 1), (3, 1)), Limits(125, 0))
    assert spans(requests) == [(0, 2), (3, 1)]


def test_refused_request_is_cut_at_its_widest_hole_and_remembered() -> None:
    learned = Learned()
    [request] = plan(1, "holding", items((0, 2), (4, 2), (10, 2), (13, 1)), Limits(125, 8))
    assert request.count == 14
    parts = learned.split(request)
    assert parts is not None
    assert spans(list(parts)) == [(0, 6), (10, 4)]
    assert learned.cuts_for(1, "holding") == [0, 10, 14]
    # the next plan never sends the refused request again; other units are unaffected
    again = plan(1, "holding", request.items, Limits(125, 8), learned.cuts_for(1, "holding"))
    assert spans(again) == [(0, 6), (10, 4)]
    assert learned.cuts_for(2, "holding") == ()


def test_refused_request_without_holes_is_cut_in_the_middle() -> None:
    learned = Learned()
    [request] = plan(1, "holding", items(*((a, 1) for a in range(100))), LIMITS)
    parts = learned.split(request)
    assert parts is not None
    assert spans(list(parts)) == [(0, 50), (50, 50)]
    assert learned.cuts_for(1, "holding") == [0, 50, 100]


def test_a_device_limit_is_found_by_halving_and_kept() -> None:
    """A device serving at most 40 registers per request: refused reads are halved until they
    pass, and the cuts make every later plan pass at once."""
    learned = Learned()
    points = items(*((a, 1) for a in range(250)))
    refused = 0
    pending = plan(1, "holding", points, LIMITS)
    done: list[Request] = []
    while pending:
        request = pending.pop(0)
        if request.count > 40:
            refused += 1
            parts = learned.split(request)
            assert parts is not None
            pending[:0] = parts
        else:
            done.append(request)
    assert sum(r.count for r in done) == 250
    assert refused > 0
    later = plan(1, "holding", points, LIMITS, learned.cuts_for(1, "holding"))
    assert all(r.count <= 40 for r in later)
    assert len(later) <= 250 / 40 * 2  # no worse than twice the ideal


def test_a_single_point_cannot_be_split() -> None:
    learned = Learned()
    [request] = plan(1, "holding", items((7, 2)), LIMITS)
    assert learned.split(request) is None
    [overlapping] = plan(1, "holding", items((7, 2), (7, 1)), LIMITS)
    assert learned.split(overlapping) is None
    assert learned.version == 0


def test_cuts_are_at_point_starts_so_a_bad_point_ends_up_alone() -> None:
    """Point 3 does not exist on the device: splitting isolates it; the rest read in bulk."""
    learned = Learned()
    points = items(*((a, 1) for a in range(8)))
    pending = plan(1, "holding", points, LIMITS)
    refused_alone: list[Request] = []
    while pending:
        request = pending.pop(0)
        if any(item.address == 3 for item in request.items):
            parts = learned.split(request)
            if parts is None:
                refused_alone.append(request)
            else:
                pending[:0] = parts
    assert spans(refused_alone) == [(3, 1)]
    later = plan(1, "holding", points, LIMITS, learned.cuts_for(1, "holding"))
    assert (3, 1) in spans(later)
    assert len(later) <= 4


def test_ten_devices_of_a_thousand_registers_need_few_requests() -> None:
    """The benchmark's shape: 1,000 registers per device as float32/uint16 points with small
    holes give at least 20× fewer requests than one request per point."""
    total_points = total_requests = 0
    for unit in range(1, 11):
        points = []
        address = 0
        while address < 1000:
            size = 2 if (address // 10) % 2 else 1
            points.append((address, size))
            address += size + (1 if address % 7 == 0 else 0)
        requests = plan(unit, "holding", items(*points), Limits(125, 16))
        total_points += len(points)
        total_requests += len(requests)
    assert total_points / total_requests >= 20
