"""Digital-economy tagging: rule tags (industry prefix, scope keyword) and manual tags, each with
its provenance and since-date, point in time."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import DIGITAL_TAGS_TABLE, ENTERPRISES
from features.snapshot import coerce_types
from features.uscc import check_character
from supervision.tagging import tag_enterprises, tagged_firms, tags_by_firm
from supervision.trigger_policy import default_policy_path, load_trigger_policy

AS_OF = pd.Timestamp("2024-06-01")


def uscc(n: int) -> str:
    first17 = f"91440105MA{n:07d}"
    return first17 + check_character(first17)


PLATFORM, STREAMER, MANUAL, PLAIN, UNBORN, CLOSED = (uscc(i) for i in range(1, 7))


@pytest.fixture(scope="module")
def policy():
    return load_trigger_policy(default_policy_path())


@pytest.fixture(scope="module")
def enterprises() -> pd.DataFrame:
    rows = [
        # uscc, industry, established, scope, status, status_date
        (PLATFORM, "I6432", "2016-04-01", "网络平台服务；互联网信息服务", "active", None),
        (STREAMER, "F5211", "2022-02-02", "服装零售；直播带货", "active", None),
        (MANUAL, "L7259", "2019-07-07", "企业管理咨询", "active", None),
        (PLAIN, "C1311", "2010-01-01", "粮食加工", "active", None),
        (UNBORN, "I6450", "2024-06-01", "数据处理服务", "active", None),
        (CLOSED, "I6513", "2018-01-01", "应用软件开发", "cancelled", "2024-03-01"),
    ]
    frame = pd.DataFrame(
        {
            "uscc": [r[0] for r in rows],
            "name": [f"公司{i}" for i in range(len(rows))],
            "industry_code": [r[1] for r in rows],
            "entity_type": "limited_company",
            "ownership_type": "private",
            "registered_capital": 50.0,
            "established_date": [r[2] for r in rows],
            "street": "南华西街道",
            "registered_address": "广州市海珠区",
            "legal_rep_id": [f"p{i}" for i in range(len(rows))],
            "legal_rep_name": "某某",
            "business_scope": [r[3] for r in rows],
            "status": [r[4] for r in rows],
            "status_date": [r[5] for r in rows],
        }
    )
    return coerce_types(ENTERPRISES, frame)


@pytest.fixture(scope="module")
def manual_tags() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "uscc": [MANUAL, MANUAL, PLATFORM],
            "tag": ["algorithm_service", "data_service", "platform"],
            "tagged_date": ["2023-03-15", "2024-06-01", "2020-01-01"],
            "source": ["manual", "manual", "manual"],
        }
    )
    return coerce_types(DIGITAL_TAGS_TABLE, frame)


def test_rule_tags_carry_rule_name_and_establishment_as_since(enterprises, policy):
    tags = tag_enterprises(enterprises, None, policy, AS_OF)
    platform = tags.loc[tags["uscc"] == PLATFORM]
    assert list(platform["tag"]) == ["platform"]
    assert list(platform["source"]) == ["rule"]
    assert list(platform["rule"]) == ["platform_industry"]
    assert list(platform["since"]) == [pd.Timestamp("2016-04-01")]
    streamer = tags.loc[tags["uscc"] == STREAMER]  # keyword only, ordinary industry code
    assert list(zip(streamer["tag"], streamer["rule"], strict=True)) == [
        ("live_commerce", "live_commerce_industry")
    ]
    assert PLAIN not in set(tags["uscc"])
    assert list(tags.columns) == ["uscc", "tag", "source", "rule", "since"]
    assert tags["since"].dtype == "datetime64[ns]"


def test_manual_tags_keep_their_source_and_date_and_exist_only_after_tagging(
    enterprises, manual_tags, policy
):
    tags = tag_enterprises(enterprises, manual_tags, policy, AS_OF)
    manual = tags.loc[tags["uscc"] == MANUAL]
    # the data_service tag is dated on as_of itself: it does not exist yet
    assert list(manual["tag"]) == ["algorithm_service"]
    assert list(manual["source"]) == ["manual"]
    assert manual["rule"].isna().all()
    assert list(manual["since"]) == [pd.Timestamp("2023-03-15")]
    both = tags.loc[tags["uscc"] == PLATFORM].sort_values("source")
    assert list(both["source"]) == ["manual", "rule"]  # both provenances kept
    later = tag_enterprises(enterprises, manual_tags, policy, "2024-06-02")
    assert set(later.loc[later["uscc"] == MANUAL, "tag"]) == {"algorithm_service", "data_service"}


def test_firms_not_yet_established_or_already_closed_carry_no_tag(enterprises, policy):
    tags = tag_enterprises(enterprises, None, policy, AS_OF)
    assert UNBORN not in set(tags["uscc"]) and CLOSED not in set(tags["uscc"])
    before_closing = tag_enterprises(enterprises, None, policy, "2024-02-01")
    assert list(before_closing.loc[before_closing["uscc"] == CLOSED, "tag"]) == [
        "algorithm_service"
    ]
    after_founding = tag_enterprises(enterprises, None, policy, "2024-06-02")
    assert list(after_founding.loc[after_founding["uscc"] == UNBORN, "tag"]) == ["data_service"]


def test_firm_level_views(enterprises, manual_tags, policy):
    tags = tag_enterprises(enterprises, manual_tags, policy, AS_OF)
    assert list(tagged_firms(tags)) == sorted([PLATFORM, STREAMER, MANUAL])
    assert tags_by_firm(tags)[PLATFORM] == ["platform"]


def test_tagging_is_deterministic(enterprises, manual_tags, policy):
    shuffled = enterprises.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(
        tag_enterprises(enterprises, manual_tags, policy, AS_OF),
        tag_enterprises(shuffled, manual_tags.iloc[::-1], policy, AS_OF),
    )
