"""An exchange's market-data topic: the name the feed's follow-up gives and the topic the feed publishes to."""

from __future__ import annotations

import pytest

import schemas
from consumers.market_data.feeds import feed_catalogue
from infrastructure.catalogue import Catalogue, market_data_topic_name
from infrastructure.settings import load_settings
from schemas.market_data import MARKET_DATA


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(load_settings().topics_file, schemas.event_types)


@pytest.mark.parametrize("exchange", ["XSX", "XSX[Demo]", "ASX24"])
def test_the_follow_ups_topic_is_the_one_the_catalogue_makes_from_its_template(
    catalogue: Catalogue, exchange: str
) -> None:
    assert market_data_topic_name(exchange) == catalogue.market_data_topic(exchange).name


def test_a_feed_publishes_every_kind_of_market_data_to_its_exchanges_topic(catalogue: Catalogue) -> None:
    feeding = feed_catalogue(catalogue, "XSX[Demo]")

    assert {feeding.topic_for_type(model.event_type).name for model in MARKET_DATA} == {"xosp.marketdata.XSX.Demo"}
    [topic] = feeding.topics
    assert (topic.partitions, topic.owner) == (
        catalogue.template("xosp.marketdata.{exchange}").partitions,
        "market_data",
    )
