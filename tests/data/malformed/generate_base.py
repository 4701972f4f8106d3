"""Write the small valid base district in `base/` (run once; the CSV files are committed).

    python tests/data/malformed/generate_base.py

Hand-written rows for a slice of Haizhu district (广州市海珠区, area code 440105); the only
computed values are the GB 32100 check characters of the credit codes.
"""

from __future__ import annotations

import csv
from pathlib import Path

from features.contract import TABLES
from features.uscc import make_code

BASE = Path(__file__).resolve().parent / "base"

# Organisation parts starting "MA" like codes issued since 2015: 'M' and 'A' in base 31.
MA = (21 * 31 + 10) * 31**7
E = {i: make_code("91440105", MA + i * 98_765_431) for i in range(1, 11)}
E[7] = make_code("92440105", MA + 7 * 98_765_431)  # individual business: registration type 92

ENTERPRISES = [
    [E[1], "广州市海珠区珠江数字科技有限公司", "I6513", "limited_company", "private", "500",
     "35", "2015-03-12", "琶洲街道", "广州市海珠区琶洲大道东1号保利国际广场南塔12楼",
     "P0001", "陈志强", "软件开发；信息系统集成服务；数据处理服务", "active", ""],
    [E[2], "广州琶洲直播电商有限公司", "F5292", "limited_company", "private", "100", "48",
     "2019-08-20", "琶洲街道", "广州市海珠区新港东路1068号", "P0002", "林晓燕",
     "互联网销售；直播服务", "active", ""],
    [E[3], "广州市海珠区新港建筑工程有限公司", "E4790", "limited_company", "private",
     "8000", "260", "2008-05-06", "新港街道", "广州市海珠区新港中路397号", "P0003",
     "黄国华", "房屋建筑工程施工总承包", "active", ""],
    [E[4], "广州南洲置业发展有限公司", "K7010", "limited_company", "state", "50000", "120",
     "2003-11-28", "南洲街道", "广州市海珠区南洲路288号", "P0004", "周建明", "房地产开发经营",
     "active", ""],
    [E[5], "广州江南工程监理有限公司", "M7482", "limited_company", "private", "600", "85",
     "2011-02-17", "江南中街道", "广州市海珠区江南大道中180号", "P0005", "吴丽华",
     "工程监理；工程造价咨询", "active", ""],
    [E[6], "广州滨江餐饮管理有限公司", "H6210", "limited_company", "hmt", "300", "",
     "2016-07-01", "滨江街道", "广州市海珠区滨江东路528号", "P0006", "郑家豪", "餐饮服务",
     "revoked", "2023-06-30"],
    [E[7], "海珠区赤岗张记五金店", "F5274", "individual_business", "private", "5", "2",
     "2012-09-09", "赤岗街道", "广州市海珠区赤岗北路12号首层", "P0007", "张永福",
     "五金产品零售", "active", ""],
    [E[8], "广州素社贸易合伙企业(有限合伙)", "F5191", "partnership", "private", "200", "6",
     "2017-04-21", "素社街道", "广州市海珠区素社直街31号", "P0008", "李秀英", "日用百货批发",
     "cancelled", "2022-11-15"],
    [E[9], "广州市海珠区凤阳农产品专业合作社", "A0141", "cooperative", "collective", "50",
     "12", "2014-06-18", "凤阳街道", "广州市海珠区凤阳路56号", "P0009", "何志明",
     "蔬菜种植；农产品销售", "active", ""],
    [E[10], "广州海幢建筑设计院有限公司", "M7484", "limited_company", "foreign", "1200",
     "140", "2009-10-10", "海幢街道", "广州市海珠区南华中路288号", "P0010", "梁思远",
     "建筑工程设计", "active", ""],
]

INSPECTORS = [
    ["I001", "王建国", "market", "44010500101", "market;food", "true"],
    ["I002", "刘芳", "market", "44010500102", "market;quality", "true"],
    ["I003", "陈伟", "tax", "44010500103", "tax", "true"],
    ["I004", "杨敏", "housing", "44010500104", "construction;quality", "true"],
    ["I005", "赵磊", "housing", "44010500105", "construction;safety", "true"],
    ["I006", "孙丽", "safety", "44010500106", "safety", "true"],
    ["I007", "周强", "fire", "44010500107", "fire", "false"],
    ["I008", "吴静", "environment", "44010500108", "environment", "true"],
]

PROJECTS = [
    ["440105202301150101", "琶洲南区人才公寓项目", "residential", "housing", "shear_wall",
     "86000", "99.5", "32", "12.5", "6", "2", "true", "main_structure", "琶洲街道",
     "2023-01-15", "2025-06-30", ""],
    ["440105202203080201", "海珠区第二实验小学扩建工程", "public_building", "school", "frame",
     "18000", "23.8", "5", "6", "3", "0", "true", "decoration", "新港街道", "2022-03-08",
     "2024-08-31", ""],
    ["440105202106210301", "南洲商业综合体", "commercial", "mall", "frame_shear_wall",
     "120000", "68", "15", "18", "9", "3", "true", "completed", "南洲街道", "2021-06-21",
     "2024-03-31", "2024-05-20"],
    ["440105202309120401", "凤阳食品加工厂房", "industrial", "factory", "steel", "24000",
     "18", "2", "3", "2", "0", "false", "foundation", "凤阳街道", "2023-09-12",
     "2024-12-31", ""],
    ["440105202405060501", "江南大道雨污分流管网工程", "municipal", "pipeline", "other",
     "0", "0", "0", "5.5", "4", "1", "true", "preparation", "江南中街道", "2024-05-06",
     "2025-10-31", ""],
    ["440105202211300601", "海珠区妇幼保健院住院楼", "public_building", "hospital",
     "frame_shear_wall", "42000", "56", "13", "10", "7", "2", "true", "main_structure",
     "海幢街道", "2022-11-30", "2025-04-30", ""],
    ["440105202407010701", "海珠湿地游客服务中心", "public_building", "office", "steel",
     "3500", "12", "2", "2.5", "1", "0", "true", "foundation", "官洲街道", "2024-07-01",
     "2025-03-31", ""],
]
P = [row[0] for row in PROJECTS]

PROJECT_INSPECTIONS = [
    ["PI2023-001", P[0], "2023-03-10", "2023-03-12", "scheduled", "2", "1", "I004;I005"],
    ["PI2023-002", P[0], "2023-09-18", "2023-09-18", "random_draw", "0", "3", "I004;I006"],
    ["PI2023-003", P[1], "2023-04-20", "2023-04-21", "scheduled", "1", "0", "I004;I005"],
    ["PI2023-004", P[2], "2023-06-02", "2023-06-05", "complaint", "4", "2", "I005;I006"],
    ["PI2024-001", P[2], "2024-01-16", "2024-01-16", "scheduled", "0", "0", "I004;I005"],
    ["PI2024-002", P[3], "2024-02-27", "2024-02-28", "random_draw", "1", "1", "I004;I006"],
    ["PI2024-003", P[5], "2024-03-05", "2024-03-07", "accident", "3", "5", "I005;I006"],
    ["PI2024-004", P[4], "2024-06-11", "2024-06-12", "scheduled", "0", "1", "I004;I005"],
]

ENTERPRISE_EVENTS = [
    ["EV2023-0001", E[1], "annual_report", "2023-05-20", "2023-05-21", "", "", "", "",
     "2022", "2022年度年报"],
    ["EV2023-0002", E[2], "complaint", "2023-07-03", "2023-07-03", "", "", "", "", "",
     "消费者投诉直播间虚假宣传"],
    ["EV2023-0003", E[2], "penalty", "2023-08-15", "2023-09-01", "GS0201", "general",
     "20000", "", "", "虚假宣传, 罚款两万元"],
    ["EV2023-0004", E[6], "abnormal_list_in", "2023-01-10", "2023-01-12", "", "", "", "",
     "", "通过登记的住所无法联系"],
    ["EV2023-0005", E[3], "tax_grade", "2023-04-01", "2023-04-10", "", "", "", "B", "",
     "2022年度纳税信用等级"],
    ["EV2023-0006", E[4], "registration_change", "2023-03-14", "2023-03-15", "", "", "", "",
     "", "法定代表人变更"],
    ["EV2023-0007", E[2], "public_opinion", "2023-10-08", "2023-10-08", "", "serious", "",
     "", "", "网络舆情: 直播带货质量问题"],
    ["EV2023-0008", E[6], "serious_dishonesty_in", "2023-05-30", "2023-06-02", "", "", "",
     "", "", "列入严重违法失信名单"],
    ["EV2024-0001", E[1], "monitoring_hit", "2024-01-22", "2024-01-23", "", "minor", "", "",
     "", "大数据监测: 经营地址异常"],
    ["EV2024-0002", E[9], "case_lead", "2024-02-05", "2024-02-06", "", "", "", "", "",
     "上级交办线索"],
    ["EV2024-0003", E[6], "abnormal_list_out", "2024-03-01", "2024-03-01", "", "", "", "",
     "", "补报年报后移出"],
    ["EV2024-0004", E[7], "penalty", "2024-04-11", "2024-04-18", "GS0105", "minor", "0", "",
     "", "首次轻微违法, 及时改正, 免予处罚"],
]

INSPECTIONS = [
    ["IN2023-0001", E[1], "2023-06-12", "2023-06-13", "market", "SJ2023-01", "C001;C002",
     "random_draw", "0.05", "no_problem", "", "I001;I002"],
    ["IN2023-0002", E[2], "2023-06-15", "2023-06-16", "market", "SJ2023-01", "C001;C003",
     "random_draw", "0.15", "order_to_correct", "GS0201", "I001;I002"],
    ["IN2023-0003", E[6], "2023-02-20", "2023-02-21", "market", "", "C004", "complaint", "",
     "unreachable", "", "I002;I001"],
    ["IN2023-0004", E[3], "2023-07-04", "2023-07-06", "safety", "SJ2023-07", "S010;S011",
     "random_draw", "0.3", "no_problem", "", "I006;I005"],
    ["IN2023-0005", E[9], "2023-09-19", "2023-09-19", "environment", "", "H201", "targeted",
     "", "no_problem", "", "I008;I001"],
    ["IN2023-0006", E[7], "2023-11-02", "2023-11-03", "market", "SJ2023-11", "C001",
     "random_draw", "0.5", "disclosure_failure", "GS0105", "I001;I002"],
    ["IN2024-0001", E[2], "2024-01-25", "2024-01-26", "market", "", "C001;C003;C005",
     "trigger", "", "case_opened", "GS0201", "I002;I001"],
    ["IN2024-0002", E[4], "2024-03-12", "2024-03-14", "fire", "", "F001", "targeted", "",
     "no_problem", "", "I007;I006"],
    ["IN2024-0003", E[5], "2024-04-09", "2024-04-10", "tax", "SJ2024-04", "T100",
     "random_draw", "0.02", "no_problem", "", "I003;I001"],
    ["IN2024-0004", E[10], "2024-05-16", "2024-05-17", "housing", "", "Q300;Q301",
     "targeted", "", "order_to_correct", "Q301", "I004;I005"],
]

PROJECT_PARTICIPANTS = [
    [P[0], E[4], "developer", ""],
    [P[0], E[3], "general_contractor", "grade1"],
    [P[0], E[5], "supervisor", "grade1"],
    [P[0], E[10], "designer", "grade1"],
    [P[1], E[3], "general_contractor", "grade1"],
    [P[1], E[5], "supervisor", "grade2"],
    [P[2], E[4], "developer", ""],
    [P[2], E[3], "general_contractor", "special"],
    [P[3], E[9], "developer", ""],
    [P[5], E[3], "general_contractor", "grade1"],
]

PROJECT_EVENTS = [
    ["PE2023-001", P[0], "quality_defect", "2023-03-10", "2023-03-12", "general", "",
     "PI2023-001", "钢筋保护层厚度不足"],
    ["PE2023-002", P[0], "safety_hazard", "2023-09-18", "2023-09-18", "serious", "",
     "PI2023-002", "高支模架体搭设不规范"],
    ["PE2023-003", P[0], "stage_change", "2023-06-01", "2023-06-03", "", "main_structure", "",
     "进入主体结构施工"],
    ["PE2023-004", P[2], "quality_defect", "2023-06-02", "2023-06-05", "minor", "",
     "PI2023-004", "砌体灰缝不饱满"],
    ["PE2023-005", P[2], "overdue_rectification", "2023-07-10", "2023-07-12", "general", "",
     "", "整改通知逾期未回复"],
    ["PE2024-001", P[5], "accident", "2024-03-04", "2024-03-04", "serious", "", "",
     "高处坠落事故, 一人受伤"],
    ["PE2024-002", P[3], "dangerous_works_start", "2024-02-20", "2024-02-21", "", "", "",
     "深基坑开挖开始"],
    ["PE2024-003", P[2], "stage_change", "2024-05-20", "2024-05-21", "", "completed", "",
     "竣工验收"],
]

DIGITAL_TAGS = [
    [E[1], "data_service", "2023-02-01", "manual"],
    [E[1], "algorithm_service", "2023-02-01", "manual"],
    [E[2], "live_commerce", "2023-02-03", "manual"],
    [E[2], "platform", "2023-05-10", "rule"],
    [E[10], "data_service", "2024-01-08", "rule"],
]

INSPECTOR_CONFLICTS = [
    ["I001", E[9], "近亲属在该合作社任职", "2023-01-05"],
    ["I004", E[3], "曾在该公司任职 (2019年离职)", "2023-01-06"],
    ["I005", E[5], "配偶持有该公司股份", "2023-02-14"],
    ["I002", E[7], "邻里关系密切", "2024-01-03"],
]

ROWS = {
    "enterprises": ENTERPRISES,
    "enterprise_events": ENTERPRISE_EVENTS,
    "inspections": INSPECTIONS,
    "projects": PROJECTS,
    "project_participants": PROJECT_PARTICIPANTS,
    "project_events": PROJECT_EVENTS,
    "project_inspections": PROJECT_INSPECTIONS,
    "digital_tags": DIGITAL_TAGS,
    "inspectors": INSPECTORS,
    "inspector_conflicts": INSPECTOR_CONFLICTS,
}


def main() -> None:
    BASE.mkdir(parents=True, exist_ok=True)
    for name, rows in ROWS.items():
        header = TABLES[name].column_names
        with (BASE / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                assert len(row) == len(header), (name, row)
                writer.writerow(row)


if __name__ == "__main__":
    main()
