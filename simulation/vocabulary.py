"""Words and codes the simulated district is written in: industries, streets, names, codes.

Kept apart from the dynamics so the realism of the text (Haizhu street names, GB/T 4754
industry codes, Chinese firm names) can be reviewed without reading any simulation code.
The per-industry numbers are simulator parameters (how risky, how consumer-facing), not
policy: they describe the synthetic world, not a regulator's rule.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Industry:
    """One GB/T 4754 industry as the simulator uses it.

    `weight` is the relative share of firms, `risk_effect` shifts the latent risk logit,
    `risky_type_effect` shifts the odds of being a structurally risky firm, `consumer_facing`
    drives complaints, `individual_share` is the share registered as individual businesses.
    """

    code: str
    zh: str
    short: str
    scope: str
    weight: float
    risk_effect: float
    risky_type_effect: float
    consumer_facing: bool
    individual_share: float
    digital_tag: str | None = None


def _load_industries() -> tuple[Industry, ...]:
    """The industry table (simulation/industries.csv): GB/T 4754 codes and their parameters."""
    path = Path(__file__).with_name("industries.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        return tuple(
            Industry(code=row["code"], zh=row["zh"], short=row["short"], scope=row["scope"],
                     weight=float(row["weight"]), risk_effect=float(row["risk_effect"]),
                     risky_type_effect=float(row["risky_type_effect"]),
                     consumer_facing=row["consumer_facing"] == "True",
                     individual_share=float(row["individual_share"]),
                     digital_tag=row["digital_tag"] or None)
            for row in csv.DictReader(handle)
        )


_ALL = _load_industries()
INDUSTRIES: tuple[Industry, ...] = tuple(i for i in _ALL if i.digital_tag is None)
DIGITAL_INDUSTRIES: tuple[Industry, ...] = tuple(i for i in _ALL if i.digital_tag is not None)

# Scope keywords a rule-based tagger can look for; each digital firm's scope carries one.
DIGITAL_SCOPE_KEYWORDS: dict[str, str] = {
    "platform": "网络平台服务",
    "live_commerce": "直播带货；网络直播服务",
    "online_game": "网络游戏运营",
    "algorithm_service": "算法服务",
    "data_service": "数据处理服务",
}

# Ordinary industries that digital firms outside the digital codes register under.
DIGITAL_HOST_INDUSTRIES: tuple[str, ...] = ("F5211", "F5137", "L7259", "I6531", "L7284")

CONSTRUCTION_SECTION = "E"
DEVELOPER_INDUSTRIES: tuple[str, ...] = ("K7010",)
SUPERVISOR_INDUSTRIES: tuple[str, ...] = ("M7482", "M7481")
DESIGNER_INDUSTRIES: tuple[str, ...] = ("M7484", "M7320")

# 海珠区 streets and some of their roads (road lists drive the synthetic addresses).
STREETS: dict[str, tuple[str, ...]] = {
    "赤岗街道": ("赤岗北路", "赤岗西路", "艺苑路"),
    "新港街道": ("新港中路", "新港西路", "晓港西马路"),
    "昌岗街道": ("昌岗中路", "昌岗东路", "宝岗大道"),
    "江南中街道": ("江南大道中", "江南西路", "前进路"),
    "滨江街道": ("滨江东路", "滨江中路", "江湾路"),
    "素社街道": ("素社直街", "工业大道北", "同福东路"),
    "海幢街道": ("同福中路", "南华中路", "海幢路"),
    "南华西街道": ("南华西路", "洪德路", "同福西路"),
    "龙凤街道": ("龙凤街", "宝业路", "前进路"),
    "沙园街道": ("沙园路", "工业大道中", "金碧路"),
    "南石头街道": ("南石头路", "工业大道南", "南箕路"),
    "凤阳街道": ("凤阳路", "石榴岗路", "泰宁路"),
    "瑞宝街道": ("瑞宝路", "石溪路", "广州大道南"),
    "江海街道": ("江海大道", "敦和路", "华新街"),
    "琶洲街道": ("琶洲大道", "新港东路", "阅江中路"),
    "南洲街道": ("南洲路", "东晓南路", "土华路"),
    "华洲街道": ("华洲路", "新滘中路", "土华村"),
    "官洲街道": ("官洲路", "新滘东路", "北山村"),
}
STREET_WEIGHTS: tuple[float, ...] = (
    7.0, 8.0, 6.0, 7.0, 5.0, 4.0, 4.0, 4.0, 5.0, 5.0, 4.0, 6.0, 7.0, 5.0, 9.0, 6.0, 4.0, 4.0,
)

# Characters for trade names (字号) and personal names.
TRADE_NAME_CHARS = (
    "鸿达盛华泰兴隆瑞祥丰源宏信诚安和顺利嘉恒昌富万通远景创新智合众联永德金宝汇美佳康乐天龙凯"
    "星辰海珠南粤穗岭江云锦绣博雅正道明晟启航骏驰晨曦朗润怡亿海悦秀峰灵峻鼎铭卓越"
)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢宋唐许邓冯韩曹曾彭肖蔡潘田董袁于余"
    "叶蒋杜苏魏程吕丁沈任姚卢钟姜崔谭陆汪范廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段"
    "雷黎史龙陶贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN_NAME_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文辉玲燕国红峰琳志新海波宇"
    "浩凯俊斌鹏晓婷倩雪颖欣嘉怡子轩梓涵然思远家豪锦荣永健东晖"
)

ENTITY_SUFFIX: dict[str, str] = {
    "limited_company": "有限公司",
    "joint_stock": "股份有限公司",
    "partnership": "企业（有限合伙）",
    "sole_proprietorship": "个人独资企业",
    "branch": "有限公司海珠分公司",
    "individual_business": "店",
    "cooperative": "专业合作社",
}

# Codes: real violations, exempt minor lapses (the Guangzhou exemption list), list reasons.
VIOLATION_CODES: tuple[str, ...] = tuple(f"WF-{i:03d}" for i in range(1, 31))
EXEMPT_CODES: tuple[str, ...] = tuple(f"GZMJ-{i:03d}" for i in range(1, 13))
ABNORMAL_REASONS: dict[str, str] = {
    "no_annual_report": "YC-01",
    "unreachable": "YC-04",
    "disclosure_failure": "YC-02",
}
SERIOUS_DISHONESTY_CODES: dict[str, str] = {
    "abnormal_three_years": "SX-01",
    "serious_case": "SX-02",
}
COMPLAINT_CODES: tuple[str, ...] = ("TS-01", "TS-02", "TS-03", "TS-04", "TS-05")
COMPLAINT_DETAILS: tuple[str, ...] = (
    "消费者投诉：商品质量问题", "消费者投诉：价格欺诈", "举报：无照经营或超范围经营",
    "消费者投诉：虚假宣传", "消费者投诉：服务合同纠纷",
)
# What changed, in the contract's vocabulary (features single out legal_rep and address).
REGISTRATION_CHANGE_CODES: tuple[str, ...] = ("legal_rep", "address", "scope", "capital", "name")
MONITORING_CODES: tuple[str, ...] = ("JC-01", "JC-02", "JC-03", "JC-04")
MONITORING_DETAILS: tuple[str, ...] = (
    "监测发现：销售禁售商品",
    "监测发现：价格欺诈",
    "监测发现：虚假广告",
    "监测发现：刷单炒信（虚假评价）",
)
OPINION_DETAILS: tuple[str, ...] = (
    "网络舆情：消费者集中投诉",
    "网络舆情：媒体负面报道",
    "网络舆情：社交平台曝光",
)
CASE_LEAD_DETAILS: tuple[str, ...] = ("上级转办线索", "公安移送线索", "兄弟单位交办线索")

DEPARTMENT_CODES: dict[str, str] = {
    "market": "SC", "tax": "SW", "environment": "HJ", "safety": "AJ", "housing": "JS", "fire": "XF",
}
DEPARTMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "market": ("登记与公示", "食品安全", "产品质量", "广告监管", "价格监管", "特种设备"),
    "tax": ("纳税评估", "发票管理", "税收风险"),
    "environment": ("大气污染防治", "水污染防治", "固体废物"),
    "safety": ("工贸安全", "危险化学品", "有限空间作业"),
    "housing": ("工程质量", "施工安全", "建筑市场"),
    "fire": ("消防安全", "人员密集场所", "火灾隐患"),
}
CHECK_ITEMS: dict[str, tuple[str, ...]] = {
    "market": ("SC-GS-01", "SC-SP-02", "SC-CP-03", "SC-GG-04", "SC-JG-05", "SC-TS-06"),
    "tax": ("SW-FP-01", "SW-SB-02", "SW-DJ-03"),
    "environment": ("HJ-DQ-01", "HJ-FS-02", "HJ-GF-03"),
    "safety": ("AJ-GM-01", "AJ-WH-02", "AJ-YX-03"),
    "housing": ("JS-ZL-01", "JS-AQ-02", "JS-SC-03"),
    "fire": ("XF-SS-01", "XF-TD-02", "XF-RY-03"),
}
CONFLICT_REASONS: tuple[str, ...] = (
    "近亲属在该企业任职 / close relative employed there",
    "曾在该企业任职 / formerly employed there",
    "与该企业存在经济往来 / financial dealings with the firm",
)

PROJECT_PLACE_WORDS = (
    "琶洲", "赤岗", "新港", "昌岗", "南洲", "瑞宝", "江海", "凤阳", "官洲",
    "华洲", "龙潭", "石溪", "大塘", "土华", "仑头", "黄埔村", "康乐", "鹭江",
)
PROJECT_USE_WORDS: dict[str, str] = {
    "housing": "住宅项目",
    "school": "学校建设工程",
    "hospital": "医院综合楼工程",
    "mall": "商业综合体项目",
    "office": "办公楼项目",
    "factory": "厂房改造工程",
    "road_bridge": "道路桥梁工程",
    "pipeline": "管网改造工程",
}
