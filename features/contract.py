"""The source-data contract: every table a district exports to riskmatrix, as data.

One place defines each table's columns (meaning, type, allowed values), keys, references and
row rules. Ingest builds its validation from it, the simulator writes to it and
`docs/contract.md` is generated from it, so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnKind = Literal["str", "int", "float", "date", "bool", "uscc", "list"]

# Enumerations shared by several tables. Codes are stable English identifiers; the bilingual
# labels are what users see.
ENTITY_TYPES: dict[str, str] = {
    "limited_company": "有限责任公司 / limited liability company",
    "joint_stock": "股份有限公司 / joint-stock company",
    "partnership": "合伙企业 / partnership",
    "sole_proprietorship": "个人独资企业 / sole proprietorship",
    "branch": "分支机构 / branch",
    "individual_business": "个体工商户 / individual business",
    "cooperative": "农民专业合作社 / farmers' cooperative",
}
OWNERSHIP_TYPES: dict[str, str] = {
    "private": "民营 / private",
    "state": "国有 / state-owned",
    "foreign": "外资 / foreign-invested",
    "hmt": "港澳台资 / Hong Kong, Macao, Taiwan",
    "collective": "集体 / collective",
}
ENTERPRISE_STATUSES: dict[str, str] = {
    "active": "存续 / active",
    "revoked": "吊销 / licence revoked",
    "cancelled": "注销 / deregistered",
}
ENTERPRISE_EVENT_TYPES: dict[str, str] = {
    "penalty": "行政处罚 / administrative penalty",
    "abnormal_list_in": "列入经营异常名录 / put on the abnormal-operation list",
    "abnormal_list_out": "移出经营异常名录 / removed from the abnormal-operation list",
    "serious_dishonesty_in": "列入严重违法失信名单 / put on the serious-dishonesty list",
    "serious_dishonesty_out": "移出严重违法失信名单 / removed from the serious-dishonesty list",
    "complaint": "投诉举报 / complaint or report",
    "annual_report": "年报公示 / annual report filed",
    "tax_grade": "纳税信用等级 / tax credit grade published",
    "registration_change": "登记事项变更 / change of registered particulars",
    "public_opinion": "互联网舆情 / public-opinion alert",
    "case_lead": "转办交办线索 / referred case lead",
    "monitoring_hit": "大数据监测命中 / monitoring-model hit",
}
# `item_code` of registration_change events: which registered particular changed.
REGISTRATION_CHANGE_ITEMS: dict[str, str] = {
    "legal_rep": "法定代表人 / legal representative",
    "address": "住所 / registered address",
    "name": "名称 / name",
    "capital": "注册资本 / registered capital",
    "scope": "经营范围 / business scope",
    "shareholder": "股东 / shareholders",
    "other": "其他 / other",
}
SEVERITIES: dict[str, str] = {
    "minor": "轻微 / minor",
    "general": "一般 / general",
    "serious": "严重 / serious",
}
TAX_GRADES: dict[str, str] = {
    "A": "A级 (≥90分) / grade A",
    "B": "B级 (70–90分) / grade B",
    "M": "M级 (新设或无收入) / grade M (new or no revenue)",
    "C": "C级 (40–70分) / grade C",
    "D": "D级 (<40分) / grade D",
}
DEPARTMENTS: dict[str, str] = {
    "market": "市场监管 / market regulation",
    "tax": "税务 / taxation",
    "environment": "生态环境 / ecology and environment",
    "safety": "应急管理 / emergency management",
    "housing": "住房城乡建设 / housing and construction",
    "fire": "消防救援 / fire and rescue",
}
INSPECTION_SOURCES: dict[str, str] = {
    "random_draw": "双随机抽查 / random draw",
    "complaint": "投诉举报核查 / complaint-driven",
    "targeted": "定向检查 / targeted",
    "trigger": "触发式检查 / trigger",
}
INSPECTION_OUTCOMES: dict[str, str] = {
    "no_problem": "未发现问题 / no problem found",
    "disclosure_failure": "未按规定公示 / disclosure failure",
    "unreachable": "无法联系 / unreachable",
    "order_to_correct": "责令改正 / order to correct",
    "case_opened": "立案查处 / case opened",
}
PROJECT_TYPES: dict[str, str] = {
    "residential": "住宅 / residential",
    "public_building": "公共建筑 / public building",
    "commercial": "商业 / commercial",
    "industrial": "工业厂房 / industrial",
    "municipal": "市政 / municipal works",
    "transport": "交通 / transport infrastructure",
}
PROJECT_USES: dict[str, str] = {
    "housing": "居住 / housing",
    "school": "学校 / school",
    "hospital": "医院 / hospital",
    "mall": "商场 / shopping mall",
    "office": "办公 / office",
    "factory": "厂房 / factory",
    "road_bridge": "道路桥梁 / roads and bridges",
    "pipeline": "管网 / pipelines",
}
STRUCTURES: dict[str, str] = {
    "frame": "框架 / frame",
    "shear_wall": "剪力墙 / shear wall",
    "frame_shear_wall": "框架-剪力墙 / frame–shear wall",
    "steel": "钢结构 / steel",
    "masonry": "砌体 / masonry",
    "other": "其他 / other",
}
PROJECT_STAGES: dict[str, str] = {
    "preparation": "施工准备 / preparation",
    "foundation": "基础 / foundation and excavation",
    "main_structure": "主体结构 / main structure",
    "decoration": "装饰装修 / fit-out",
    "completed": "竣工 / completed",
}
PARTICIPANT_ROLES: dict[str, str] = {
    "developer": "建设单位 / developer",
    "general_contractor": "施工总承包 / general contractor",
    "supervisor": "监理单位 / supervising engineer",
    "designer": "设计单位 / designer",
    "subcontractor": "专业分包 / specialist subcontractor",
}
QUALIFICATION_GRADES: dict[str, str] = {
    "special": "特级 / special grade",
    "grade1": "一级 / grade 1",
    "grade2": "二级 / grade 2",
    "grade3": "三级 / grade 3",
}
PROJECT_EVENT_TYPES: dict[str, str] = {
    "quality_defect": "质量问题 / quality defect",
    "safety_hazard": "安全隐患 / safety hazard",
    "accident": "安全事故 / accident",
    "overdue_rectification": "逾期未整改 / overdue rectification",
    "stage_change": "施工阶段变化 / stage change",
    "dangerous_works_start": "危大工程开始 / dangerous-works phase starts",
    "dangerous_works_end": "危大工程结束 / dangerous-works phase ends",
}
PROJECT_INSPECTION_SOURCES: dict[str, str] = {
    "scheduled": "计划检查 / scheduled",
    "random_draw": "随机抽查 / random draw",
    "complaint": "投诉核查 / complaint-driven",
    "accident": "事故后检查 / after an accident",
}
DIGITAL_TAGS: dict[str, str] = {
    "platform": "平台经济 / online platform",
    "live_commerce": "直播电商 / live-stream commerce",
    "online_game": "网络游戏 / online games",
    "algorithm_service": "算法服务 / algorithm services",
    "data_service": "数据服务 / data services",
}
TAG_SOURCES: dict[str, str] = {
    "manual": "人工标注 / manual",
    "rule": "规则标注 / rule",
}


@dataclass(frozen=True)
class Column:
    """One column of a source table: what it means and what a valid value is."""

    name: str
    kind: ColumnKind
    zh: str
    en: str
    required: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    references: tuple[str, str] | None = None  # (table, column)


@dataclass(frozen=True)
class RowRule:
    """A rule relating several columns of one row; `name` is what rejects report."""

    name: str
    zh: str
    en: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A source table: file stem, columns, primary key and cross-column rules."""

    name: str
    zh: str
    en: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rules: tuple[RowRule, ...] = field(default_factory=tuple)
    required_table: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _enum(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(values)


KNOWN_NOT_BEFORE_OCCURRED = RowRule(
    "known_not_before_occurred",
    "知悉日期不得早于发生日期",
    "known_date must not be before occurred_date",
    ("occurred_date", "known_date"),
)

ENTERPRISES = Table(
    name="enterprises",
    zh="市场主体登记信息",
    en="Registered enterprises (current registration record)",
    key=("uscc",),
    columns=(
        Column("uscc", "uscc", "统一社会信用代码 (GB 32100-2015, 18位)",
               "Unified social credit code, 18 characters with GB 32100 check character"),
        Column("name", "str", "企业名称", "Registered name", max_length=200),
        Column("industry_code", "str", "国民经济行业代码 (GB/T 4754, 门类字母+4位数字)",
               "Industry code (GB/T 4754: section letter + 4 digits, e.g. I6432)", max_length=5),
        Column("entity_type", "str", "市场主体类型", "Entity type",
               allowed=_enum(ENTITY_TYPES)),
        Column("ownership_type", "str", "所有制类型 (仅用于审计, 默认不作模型输入)",
               "Ownership type (audit only, not a model input by default)",
               allowed=_enum(OWNERSHIP_TYPES)),
        Column("registered_capital", "float", "注册资本 (万元)",
               "Registered capital in 10,000 CNY", minimum=0, maximum=1e9),
        Column("employees", "int", "从业人数 (年报)", "Employees as last reported",
               required=False, minimum=0, maximum=1_000_000),
        Column("established_date", "date", "成立日期", "Date of establishment"),
        Column("street", "str", "所属街道", "Street (sub-district) of the registered address",
               max_length=50),
        Column("registered_address", "str", "住所 (注册地址)", "Registered address",
               max_length=300),
        Column("legal_rep_id", "str", "法定代表人标识 (假名化)",
               "Legal representative's pseudonymous id", max_length=64),
        Column("legal_rep_name", "str", "法定代表人姓名 (个人信息, 公开时脱敏)",
               "Legal representative's name (personal data, masked on publication)",
               max_length=50),
        Column("business_scope", "str", "经营范围", "Business scope as registered",
               required=False, max_length=2000),
        Column("status", "str", "登记状态", "Registration status",
               allowed=_enum(ENTERPRISE_STATUSES)),
        Column("status_date", "date", "状态变更日期 (吊销/注销时必填)",
               "Date of revocation or deregistration (required unless active)", required=False),
    ),
    rules=(
        RowRule("status_date_when_closed", "吊销或注销的企业必须填写状态变更日期",
                "status_date is required when status is revoked or cancelled",
                ("status", "status_date")),
        RowRule("status_date_after_established", "状态变更日期不得早于成立日期",
                "status_date must not be before established_date",
                ("established_date", "status_date")),
    ),
)

ENTERPRISE_EVENTS = Table(
    name="enterprise_events",
    zh="企业信用事件 (处罚、名录、投诉、年报、纳税等级、变更、舆情、线索、监测)",
    en="Enterprise credit events: penalties, list entries, complaints, annual reports, "
       "tax grades, registration changes, public opinion, case leads, monitoring hits",
    key=("event_id",),
    columns=(
        Column("event_id", "str", "事件编号", "Event id, unique", max_length=64),
        Column("uscc", "uscc", "统一社会信用代码", "Enterprise",
               references=("enterprises", "uscc")),
        Column("event_type", "str", "事件类型", "Event type",
               allowed=_enum(ENTERPRISE_EVENT_TYPES)),
        Column("occurred_date", "date", "发生日期", "Date the event occurred"),
        Column("known_date", "date", "监管部门知悉日期", "Date the regulator learned of it"),
        Column("item_code", "str",
               "违法行为或事项代码 (可对照免罚清单); 登记变更事件为变更事项 "
               "(见 REGISTRATION_CHANGE_ITEMS)",
               "Violation or item code (matched against the exemption list); for "
               "registration_change events, what changed (see REGISTRATION_CHANGE_ITEMS)",
               required=False, max_length=32),
        Column("severity", "str", "严重程度", "Severity", required=False,
               allowed=_enum(SEVERITIES)),
        Column("amount", "float", "罚没金额 (元)", "Fine and confiscation in CNY",
               required=False, minimum=0, maximum=1e10),
        Column("grade", "str", "纳税信用等级", "Tax credit grade (tax_grade events)",
               required=False, allowed=_enum(TAX_GRADES)),
        Column("report_year", "int", "年报所属年度", "Year the annual report covers",
               required=False, minimum=1990, maximum=2100),
        Column("detail", "str", "说明", "Free-text detail", required=False, max_length=2000),
    ),
    rules=(
        KNOWN_NOT_BEFORE_OCCURRED,
        RowRule("grade_for_tax_grade", "纳税信用等级事件必须填写等级",
                "grade is required for tax_grade events", ("event_type", "grade")),
        RowRule("report_year_for_annual_report", "年报事件必须填写所属年度",
                "report_year is required for annual_report events",
                ("event_type", "report_year")),
        RowRule("severity_for_monitoring_hit", "监测命中和舆情事件必须填写严重程度",
                "severity is required for monitoring_hit and public_opinion events",
                ("event_type", "severity")),
    ),
)

INSPECTIONS = Table(
    name="inspections",
    zh="检查记录 (双随机抽查及其他检查)",
    en="Inspections of enterprises (random draws and other checks)",
    key=("inspection_id",),
    columns=(
        Column("inspection_id", "str", "检查编号", "Inspection id, unique", max_length=64),
        Column("uscc", "uscc", "被检查企业", "Inspected enterprise",
               references=("enterprises", "uscc")),
        Column("inspection_date", "date", "检查日期", "Date of the inspection"),
        Column("known_date", "date", "结果录入日期", "Date the result was recorded"),
        Column("department", "str", "检查部门", "Inspecting department",
               allowed=_enum(DEPARTMENTS)),
        Column("campaign_id", "str", "抽查任务编号", "Campaign id (random draws)",
               required=False, max_length=64),
        Column("check_items", "list", "检查事项代码 (分号分隔)",
               "Check item codes, semicolon-separated", max_length=500),
        Column("source", "str", "检查来源", "Why the enterprise was inspected",
               allowed=_enum(INSPECTION_SOURCES)),
        Column("inclusion_probability", "float", "入样概率 (随机抽查必填)",
               "Probability the enterprise was drawn (required for random draws)",
               required=False, minimum=1e-9, maximum=1.0),
        Column("outcome", "str", "检查结果", "Outcome", allowed=_enum(INSPECTION_OUTCOMES)),
        Column("violation_code", "str", "发现问题代码 (可对照免罚清单)",
               "Code of the problem found (matched against the exemption list)",
               required=False, max_length=32),
        Column("inspectors", "list", "执法人员编号 (分号分隔)",
               "Inspector ids, semicolon-separated", max_length=200),
    ),
    rules=(
        RowRule("known_not_before_inspection", "结果录入日期不得早于检查日期",
                "known_date must not be before inspection_date",
                ("inspection_date", "known_date")),
        RowRule("inclusion_probability_for_random_draw", "随机抽查必须填写入样概率",
                "inclusion_probability is required when source is random_draw",
                ("source", "inclusion_probability")),
        RowRule("campaign_for_random_draw", "随机抽查必须填写抽查任务编号",
                "campaign_id is required when source is random_draw",
                ("source", "campaign_id")),
        RowRule("inspectors_exist", "执法人员必须在执法检查人员名录库中",
                "every inspector id must be in the inspector roster", ("inspectors",)),
    ),
)

PROJECTS = Table(
    name="projects",
    zh="在建工程项目",
    en="Construction projects",
    key=("project_id",),
    columns=(
        Column("project_id", "str", "项目编号 (施工许可证号)",
               "Project id (construction permit no.)", max_length=64),
        Column("name", "str", "项目名称", "Project name", max_length=200),
        Column("project_type", "str", "工程类别", "Project type", allowed=_enum(PROJECT_TYPES)),
        Column("use", "str", "使用功能", "Intended use", allowed=_enum(PROJECT_USES)),
        Column("structure", "str", "结构形式", "Structural system", allowed=_enum(STRUCTURES)),
        Column("floor_area_m2", "float", "建筑面积 (平方米)", "Gross floor area in m²",
               minimum=0, maximum=5e6),
        Column("height_m", "float", "建筑高度 (米)", "Building height in m",
               minimum=0, maximum=700),
        Column("storeys", "int", "地上层数", "Storeys above ground", minimum=0, maximum=200),
        Column("excavation_depth_m", "float", "基坑开挖深度 (米)", "Excavation depth in m",
               minimum=0, maximum=100),
        Column("dangerous_works", "int", "危大工程数量", "Number of dangerous sub-works (危大工程)",
               minimum=0, maximum=200),
        Column("over_scale_dangerous_works", "int", "超过一定规模的危大工程数量",
               "Number of over-scale dangerous sub-works (超危大工程)", minimum=0, maximum=200),
        Column("crowded_surroundings", "bool", "周边人员密集", "Crowded surroundings"),
        Column("stage", "str", "当前施工阶段", "Current stage", allowed=_enum(PROJECT_STAGES)),
        Column("street", "str", "所属街道", "Street (sub-district)", max_length=50),
        Column("permit_date", "date", "施工许可日期", "Construction permit date"),
        Column("planned_completion_date", "date", "计划竣工日期", "Planned completion date"),
        Column("completion_date", "date", "实际竣工日期", "Actual completion date",
               required=False),
    ),
    rules=(
        RowRule("over_scale_within_dangerous", "超危大工程数量不得超过危大工程数量",
                "over_scale_dangerous_works must not exceed dangerous_works",
                ("dangerous_works", "over_scale_dangerous_works")),
        RowRule("planned_after_permit", "计划竣工日期不得早于施工许可日期",
                "planned_completion_date must not be before permit_date",
                ("permit_date", "planned_completion_date")),
    ),
)

PROJECT_PARTICIPANTS = Table(
    name="project_participants",
    zh="工程参建单位",
    en="Enterprises taking part in a project",
    key=("project_id", "uscc", "role"),
    columns=(
        Column("project_id", "str", "项目编号", "Project", references=("projects", "project_id")),
        Column("uscc", "uscc", "参建单位统一社会信用代码", "Participating enterprise",
               references=("enterprises", "uscc")),
        Column("role", "str", "参建角色", "Role", allowed=_enum(PARTICIPANT_ROLES)),
        Column("qualification_grade", "str", "资质等级", "Qualification grade",
               required=False, allowed=_enum(QUALIFICATION_GRADES)),
    ),
)

PROJECT_EVENTS = Table(
    name="project_events",
    zh="工程项目事件 (质量问题、安全隐患、事故、逾期整改、阶段变化)",
    en="Project events: quality defects, safety hazards, accidents, overdue rectifications, "
       "stage changes, dangerous-works phases",
    key=("event_id",),
    columns=(
        Column("event_id", "str", "事件编号", "Event id, unique", max_length=64),
        Column("project_id", "str", "项目编号", "Project", references=("projects", "project_id")),
        Column("event_type", "str", "事件类型", "Event type", allowed=_enum(PROJECT_EVENT_TYPES)),
        Column("occurred_date", "date", "发生日期", "Date the event occurred"),
        Column("known_date", "date", "知悉日期", "Date the regulator learned of it"),
        Column("severity", "str", "严重程度", "Severity", required=False,
               allowed=_enum(SEVERITIES)),
        Column("stage", "str", "新施工阶段 (阶段变化事件)", "New stage (stage_change events)",
               required=False, allowed=_enum(PROJECT_STAGES)),
        Column("inspection_id", "str", "发现该问题的检查编号", "Project inspection that found it",
               required=False, references=("project_inspections", "inspection_id")),
        Column("detail", "str", "说明", "Free-text detail", required=False, max_length=2000),
    ),
    rules=(
        KNOWN_NOT_BEFORE_OCCURRED,
        RowRule("stage_for_stage_change", "阶段变化事件必须填写新施工阶段",
                "stage is required for stage_change events", ("event_type", "stage")),
    ),
)

PROJECT_INSPECTIONS = Table(
    name="project_inspections",
    zh="工程质量安全监督检查记录",
    en="Quality and safety inspections of construction sites",
    key=("inspection_id",),
    columns=(
        Column("inspection_id", "str", "检查编号", "Inspection id, unique", max_length=64),
        Column("project_id", "str", "项目编号", "Project", references=("projects", "project_id")),
        Column("inspection_date", "date", "检查日期", "Date of the inspection"),
        Column("known_date", "date", "结果录入日期", "Date the result was recorded"),
        Column("source", "str", "检查来源", "Why the site was inspected",
               allowed=_enum(PROJECT_INSPECTION_SOURCES)),
        Column("defects_found", "int", "发现质量问题数", "Quality defects found",
               minimum=0, maximum=1000),
        Column("hazards_found", "int", "发现安全隐患数", "Safety hazards found",
               minimum=0, maximum=1000),
        Column("inspectors", "list", "执法人员编号 (分号分隔)",
               "Inspector ids, semicolon-separated", max_length=200),
    ),
    rules=(
        RowRule("known_not_before_inspection", "结果录入日期不得早于检查日期",
                "known_date must not be before inspection_date",
                ("inspection_date", "known_date")),
        RowRule("inspectors_exist", "执法人员必须在执法检查人员名录库中",
                "every inspector id must be in the inspector roster", ("inspectors",)),
    ),
)

DIGITAL_TAGS_TABLE = Table(
    name="digital_tags",
    zh="数字经济企业标签 (人工标注)",
    en="Digital-economy tags assigned by hand",
    key=("uscc", "tag"),
    columns=(
        Column("uscc", "uscc", "统一社会信用代码", "Enterprise",
               references=("enterprises", "uscc")),
        Column("tag", "str", "标签", "Tag", allowed=_enum(DIGITAL_TAGS)),
        Column("tagged_date", "date", "标注日期", "Date the tag was assigned"),
        Column("source", "str", "标注来源", "How the tag was assigned", allowed=_enum(TAG_SOURCES)),
    ),
)

INSPECTORS = Table(
    name="inspectors",
    zh="执法检查人员名录库",
    en="Inspector roster",
    key=("inspector_id",),
    columns=(
        Column("inspector_id", "str", "执法人员编号", "Inspector id", max_length=32),
        Column("name", "str", "姓名 (个人信息, 公开时脱敏)", "Name (masked on publication)",
               max_length=50),
        Column("department", "str", "所属部门", "Department", allowed=_enum(DEPARTMENTS)),
        Column("certificate_no", "str", "执法证号", "Enforcement certificate number",
               max_length=32),
        Column("fields", "list", "执法领域 (分号分隔)", "Fields of competence, semicolon-separated",
               max_length=200),
        Column("active", "bool", "是否在岗", "Currently on duty"),
    ),
)

INSPECTOR_CONFLICTS = Table(
    name="inspector_conflicts",
    zh="执法人员利害关系申报 (回避)",
    en="Declared conflicts of interest between inspectors and enterprises (recusal)",
    key=("inspector_id", "uscc"),
    columns=(
        Column("inspector_id", "str", "执法人员编号", "Inspector",
               references=("inspectors", "inspector_id")),
        Column("uscc", "uscc", "有利害关系的企业", "Enterprise the inspector must not inspect",
               references=("enterprises", "uscc")),
        Column("reason", "str", "回避事由", "Reason", max_length=200),
        Column("declared_date", "date", "申报日期", "Date declared"),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        ENTERPRISES,
        ENTERPRISE_EVENTS,
        INSPECTIONS,
        PROJECTS,
        PROJECT_PARTICIPANTS,
        PROJECT_EVENTS,
        PROJECT_INSPECTIONS,
        DIGITAL_TAGS_TABLE,
        INSPECTORS,
        INSPECTOR_CONFLICTS,
    )
}

# Order in which tables must be validated so referenced keys are known first.
VALIDATION_ORDER: tuple[str, ...] = (
    "enterprises",
    "inspectors",
    "projects",
    "project_inspections",
    "enterprise_events",
    "inspections",
    "project_participants",
    "project_events",
    "digital_tags",
    "inspector_conflicts",
)

LIST_SEPARATOR = ";"
DATE_FORMAT = "%Y-%m-%d"
