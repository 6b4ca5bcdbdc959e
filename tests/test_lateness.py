"""The lateness sample kept for benchmarks and operators."""

import fakeredis

from workers.runtime.lateness import SAMPLES, percentile, record, samples


def test_samples_are_capped_newest_first() -> None:
    redis = fakeredis.FakeRedis()
    for i in range(SAMPLES + 10):
        record(redis, "p", i / 1000)
    got = samples(redis, "p")
    assert len(got) == SAMPLES and got[0] == (SAMPLES + 9) / 1000


def test_negative_lateness_counts_as_on_time() -> None:
    redis = fakeredis.FakeRedis()
    record(redis, "p", -0.5)
    assert samples(redis, "p") == [0.0]


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None
