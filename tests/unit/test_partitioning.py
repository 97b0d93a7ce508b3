from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from producers.partitioning import murmur2, partition_for


@given(st.binary(max_size=300))
def test_murmur2_matches_the_kafka_client_for_any_key(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=500))
def test_partition_is_the_one_every_other_producer_picks(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, count) == DefaultPartitioner()(key, partitions, partitions)


def test_known_java_client_values() -> None:
    # Values from the Java client's own test suite (UtilsTest.testMurmur2), as signed 32-bit ints.
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for key, expected in cases.items():
        assert murmur2(key) == expected & 0xFFFFFFFF
