"""Server-rendered pages for inspectors and regulators (Jinja2, inline SVG charts, no JS).

Every page reads through the API's own handlers and read functions (`serving.api.routes`,
`serving.api.decisions`), so a page enforces the same role matrix and leaves the same audit
trail as the JSON endpoint it mirrors. The browser carries the API token in an HttpOnly,
SameSite=Lax session cookie; a page request without one is sent to /login, a refused one gets
a bilingual 403 page.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from serving.api import auth, decisions, errors, routes
from serving.api.auth import SESSION_COOKIE, Principal, Role
from serving.api.schemas import EnterpriseDecision, ProjectPlacement, VerificationOut
from serving.web.charts import (
    Bar,
    WaterfallStep,
    bar_chart_svg,
    threshold_bars_svg,
    waterfall_svg,
)

T = TypeVar("T")
PRINCIPAL_PARAMETERS = ("principal", "_user", "_admin", "user", "admin")
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
router = APIRouter(include_in_schema=False)

EVERYONE = (Role.inspector, Role.regulator, Role.admin)
OVERSIGHT = (Role.regulator, Role.admin)
ROLE_ZH = {Role.inspector: "检查员", Role.regulator: "监管人员", Role.admin: "管理员"}
DRIFT_ROWS_SHOWN = 15  # presentation only: how many inputs the drift chart draws
CHANGE_LABELS = {"unchanged": "不变", "riskier": "升级", "safer": "降级", "new": "新增",
                 "exited": "退出"}
CLASS_COLOURS = {"A": "#58d68d", "B": "#f4d03f", "C": "#eb984e", "D": "#cb4335"}
# Fill of a matrix cell by its supervision level's code; a district's own codes that are not
# colour names fall back to an intensity ramp in the policy's order (most intensive first).
LEVEL_FILLS = {"red": "#f1948a", "orange": "#f8c471", "yellow": "#f9e79f", "blue": "#aed6f1",
               "green": "#abebc6"}
LEVEL_RAMP = ("#e6b0aa", "#f5cba7", "#fcf3cf", "#d6eaf8", "#e8f8f5", "#f2f3f4")


@dataclass(frozen=True)
class NavItem:
    href: str
    zh: str
    en: str
    current: bool = False


# --------------------------------------------------------------------------- rendering


def _nav(principal: Principal, path: str) -> list[NavItem]:
    items = ([NavItem("/", "我的检查清单", "my list")] if principal.role is Role.inspector
             else [NavItem("/dashboard", "监管看板", "dashboard"),
                   NavItem("/projects/matrix", "工程风险矩阵", "project matrix"),
                   NavItem("/campaigns", "双随机抽查", "campaigns")])
    return [NavItem(i.href, i.zh, i.en, path == i.href or (i.href != "/"
                                                            and path.startswith(i.href)))
            for i in items]


def csrf_token(request: Request) -> str:
    """The form token of this session: an HMAC of the session cookie, so a page of another
    site (which cannot read the cookie) cannot forge a state-changing POST, and no server
    state is needed. Empty without a session."""
    session = request.cookies.get(SESSION_COOKIE, "")
    if not session:
        return ""
    return hmac.new(session.encode(), b"riskmatrix-form", hashlib.sha256).hexdigest()


def csrf_valid(request: Request, submitted: str | None) -> bool:
    expected = csrf_token(request)
    return bool(expected) and hmac.compare_digest(expected, submitted or "")


CSRF_REFUSED = ("表单已过期或来源不明，请刷新页面后重试 / "
                "form expired or not from this site: reload the page and try again")


def render(request: Request, template: str, principal: Principal | None, title_zh: str,
           title_en: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """One page with the shared header (navigation by role, who is signed in)."""
    page = {"request": request, "principal": principal, "title_zh": title_zh,
            "title_en": title_en, "csrf": csrf_token(request),
            "nav": _nav(principal, request.url.path) if principal else [],
            "role_zh": ROLE_ZH.get(principal.role, "") if principal else "", **context}
    response = TEMPLATES.TemplateResponse(request, template, page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"  # internal data: never cached
    return response


def error_page(request: Request, principal: Principal | None, status_code: int,
               message: str) -> HTMLResponse:
    titles = {403: ("无权访问", "forbidden"), 404: ("未找到", "not found"),
              409: ("尚未就绪", "not ready yet")}
    zh, en = titles.get(status_code, ("出错了", "error"))
    return render(request, "error.html", principal, zh, en, status_code=status_code,
                  status=status_code, message=message)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def page(request: Request, roles: Sequence[Role],
         build: Callable[[Principal], Response]) -> Response:
    """Sign-in and role gate around a page; user-facing failures become bilingual pages."""
    principal = auth.optional_principal(request)
    if principal is None:
        return _login_redirect(request)
    if principal.role not in roles:
        names = ", ".join(r.value for r in roles)
        return error_page(request, principal, 403,
                          f"此页面仅限 {names} 角色 / this page is for the roles {names} only")
    try:
        return build(principal)
    except HTTPException as refused:
        return error_page(request, principal, refused.status_code, str(refused.detail))
    except decisions.NotFoundError as missing:
        return error_page(request, principal, 404, str(missing))
    except errors.not_ready_types() as not_ready:
        return error_page(request, principal, 409, str(not_ready))


def _safe_next(target: str | None) -> str:
    """Only a local path is a valid place to return to after signing in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def api_call(request: Request, principal: Principal, handler: Callable[..., T],
             **arguments: Any) -> T:
    """Run an API handler for a page with the app's engine, settings and cache and the signed-in
    principal, matched by parameter name: the page then enforces exactly the API's role rules
    and writes the same audit records, whatever dependencies the handler takes."""
    state = request.app.state
    available = {"engine": state.engine, "settings": state.settings, "cache": state.cache,
                 "request": request}
    for name in inspect.signature(handler).parameters:
        if name in arguments:
            continue
        if name in available:
            arguments[name] = available[name]
        elif name in PRINCIPAL_PARAMETERS:
            arguments[name] = principal
    return handler(**arguments)


# --------------------------------------------------------------------------- sign-in


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", None, "登录", "sign in", next=_safe_next(next),
                  username="", error=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)],
          next: Annotated[str, Form(max_length=512)] = "/") -> Response:
    engine = request.app.state.engine
    principal = auth.authenticate(engine, username.strip(), password)
    if principal is None:
        return render(request, "login.html", None, "登录", "sign in", status_code=401,
                      next=_safe_next(next), username=username,
                      error="用户名或密码错误 / wrong username or password")
    token = auth.issue_token(engine, principal)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https",
                        max_age=int(auth.DEFAULT_TOKEN_TTL.total_seconds()))
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str | None, Form(max_length=128)] = None
           ) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token and not csrf_valid(request, csrf):
        return error_page(request, auth.optional_principal(request), 403, CSRF_REFUSED)
    if token:
        auth.revoke_token(request.app.state.engine, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --------------------------------------------------------------------------- inspector list


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    """Inspectors start from their ranked list; regulators and admins from the dashboard."""
    def build(principal: Principal) -> Response:
        if principal.role is not Role.inspector:
            return RedirectResponse("/dashboard", status_code=303)
        listing = api_call(request, principal, routes.my_list)
        return render(request, "inspector_list.html", principal, "我的检查清单",
                      "my inspection list", listing=listing,
                      reasons={t.visit_id: paired_reasons(t.top_reasons_zh, t.top_reasons_en)
                               for t in listing.targets})

    return page(request, EVERYONE, build)


def paired_reasons(zh: str, en: str) -> list[tuple[str, str]]:
    """The list's "；"-joined reason texts as (Chinese, English) pairs, in rank order."""
    zh_parts = [p.strip() for p in str(zh).split("；") if p.strip()]
    en_parts = [p.strip() for p in str(en).split("；") if p.strip()]
    if len(zh_parts) != len(en_parts):
        return [(str(zh), str(en))] if zh or en else []
    return list(zip(zh_parts, en_parts, strict=True))


# --------------------------------------------------------------------------- enterprise


def enterprise_waterfall(decision: EnterpriseDecision, raw_score: float) -> str:
    """The SHAP waterfall of a stored decision: the reasons kept with it move the score from
    (base value + every other feature) to the model output, so the bars add up exactly."""
    steps = [WaterfallStep(r.text_zh, r.contribution, r.text_en) for r in decision.reasons]
    start = raw_score - sum(s.amount for s in steps)
    return waterfall_svg(
        steps, start_value=start, start_label="基准值与其他特征 / base value and other features",
        end_label=(f"模型输出 (对数几率) / model output (log-odds) → 概率 / probability "
                   f"{decision.probability:.3f}"),
        title=f"{decision.uscc} 风险评分构成 / what makes up the score (SHAP)")


@router.get("/enterprises/{uscc}", response_class=HTMLResponse)
def enterprise_page(request: Request, uscc: str) -> Response:
    def build(principal: Principal) -> Response:
        from serving.store import enterprise_score

        app = request.app
        code = uscc.strip().upper()[:18]
        decision = api_call(request, principal, routes.enterprise, uscc=code)
        stored = enterprise_score(app.state.engine, code, decision.run_id)
        raw = float(stored["raw_score"]) if stored else sum(r.contribution
                                                            for r in decision.reasons)
        return render(request, "enterprise.html", principal, f"企业 {code}",
                      f"enterprise {code}", decision=decision,
                      waterfall=Markup(enterprise_waterfall(decision, raw)))

    return page(request, EVERYONE, build)


# --------------------------------------------------------------------------- projects


@dataclass(frozen=True)
class MatrixCell:
    risk_source_grade: str
    management_grade: str
    level: str
    level_zh: str
    level_en: str
    fill: str
    projects: int


def level_fills(level_codes: Sequence[str]) -> dict[str, str]:
    """A fill colour per supervision level: its own colour name when it has one, else by its
    place in the policy's order (most intensive first)."""
    return {code: LEVEL_FILLS.get(code, LEVEL_RAMP[min(i, len(LEVEL_RAMP) - 1)])
            for i, code in enumerate(level_codes)}


def matrix_cells(cells: Mapping[str, Mapping[str, str]],
                 levels: Sequence[tuple[str, str, str]],
                 counts: Sequence[Mapping[str, Any]]) -> list[list[MatrixCell]]:
    """Rows R4 … R1 (most hazardous on top) × columns M1 … M4, each with the policy's level
    for that cell, its colour and the number of projects placed in it."""
    from models.matrix import MANAGEMENT_GRADES
    from models.risk_source import RISK_SOURCE_GRADES

    names = {code: (zh, en) for code, zh, en in levels}
    fills = level_fills([code for code, _, _ in levels])
    placed = {(str(c["risk_source_grade"]), str(c["management_grade"])): int(c["projects"])
              for c in counts}
    return [[MatrixCell(r, m, cells[r][m], *names.get(cells[r][m], (cells[r][m], cells[r][m])),
                        fills.get(cells[r][m], LEVEL_RAMP[-1]), placed.get((r, m), 0))
             for m in MANAGEMENT_GRADES] for r in reversed(RISK_SOURCE_GRADES)]


def _matrix_policy(request: Request) -> Any:
    from serving.cli_project import matrix_section
    from supervision.policy import load_policy

    return matrix_section(load_policy(request.app.state.settings.policy_path))


def _grade_labels() -> dict[str, tuple[str, str]]:
    from models.matrix import MANAGEMENT_GRADE_LABELS
    from models.risk_source import RISK_SOURCE_GRADE_LABELS

    return {**RISK_SOURCE_GRADE_LABELS, **MANAGEMENT_GRADE_LABELS}


def _matrix_page(request: Request, principal: Principal, cell: tuple[str, str] | None
                 ) -> Response:
    matrix = api_call(request, principal, routes.project_list)
    section = _matrix_policy(request)
    levels = [(lv.code, lv.zh, lv.en) for lv in section.levels]
    grid = matrix_cells(section.cells, levels, matrix.counts)
    chosen: list[ProjectPlacement] = []
    if cell is not None:
        chosen = sorted((p for p in matrix.projects
                         if (p.risk_source_grade, p.management_grade) == cell),
                        key=lambda p: (p.next_due is None, p.next_due, -(p.probability or 0)))
    return render(request, "matrix.html", principal, "工程风险矩阵", "project risk matrix",
                  matrix=matrix, grid=grid, labels=_grade_labels(), cell=cell, chosen=chosen,
                  levels=[(code, zh, en, level_fills([c for c, _, _ in levels])[code],
                           lv.interval_days)
                          for (code, zh, en), lv in zip(levels, section.levels, strict=True)])


@router.get("/projects/matrix", response_class=HTMLResponse)
def project_matrix_page(request: Request) -> Response:
    return page(request, OVERSIGHT, lambda p: _matrix_page(request, p, None))


@router.get("/projects/matrix/{risk_source_grade}/{management_grade}",
            response_class=HTMLResponse)
def project_cell_page(request: Request, risk_source_grade: str,
                      management_grade: str) -> Response:
    """Drill-down: the projects placed in one cell, soonest due first."""
    def build(principal: Principal) -> Response:
        cell = (risk_source_grade.upper(), management_grade.upper())
        if cell[0] not in _grade_labels() or cell[1] not in _grade_labels():
            raise decisions.NotFoundError(
                f"没有单元格 {cell[0]}×{cell[1]} (应为 R1–R4 × M1–M4) / no cell "
                f"{cell[0]}×{cell[1]} (use R1–R4 × M1–M4)")
        return _matrix_page(request, principal, cell)

    return page(request, OVERSIGHT, build)


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project_id: str) -> Response:
    def build(principal: Principal) -> Response:
        decision = api_call(request, principal, routes.project, project_id=project_id[:64])
        return render(request, "project.html", principal, f"工程项目 {project_id}",
                      f"project {project_id}", decision=decision, labels=_grade_labels())

    return page(request, OVERSIGHT, build)


# --------------------------------------------------------------------------- campaigns


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page(request: Request) -> Response:
    def build(principal: Principal) -> Response:
        summaries = api_call(request, principal, routes.campaign_list)
        return render(request, "campaigns.html", principal, "双随机抽查任务",
                      "random-inspection campaigns", campaigns=summaries)

    return page(request, OVERSIGHT, build)


def _campaign_page(request: Request, principal: Principal, campaign_id: str,
                   verification: VerificationOut | None) -> Response:
    view = api_call(request, principal, routes.campaign_plan, campaign_id=campaign_id)
    draw = (api_call(request, principal, routes.campaign_draw, campaign_id=campaign_id)
            if view.seed_revealed is not None else None)
    return render(request, "campaign.html", principal, f"抽查任务 {campaign_id}",
                  f"campaign {campaign_id}", view=view, draw=draw, verification=verification)


def _campaign_id(value: str) -> str:
    if not value or len(value) > 64 or not all(c.isalnum() or c in "_.-" for c in value):
        raise decisions.NotFoundError(f"抽查任务编号无效 {value!r} / invalid campaign id")
    return value


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: str) -> Response:
    return page(request, OVERSIGHT,
                lambda p: _campaign_page(request, p, _campaign_id(campaign_id), None))


@router.post("/campaigns/{campaign_id}/verify", response_class=HTMLResponse)
def campaign_verify_page(request: Request, campaign_id: str,
                         csrf: Annotated[str | None, Form(max_length=128)] = None) -> Response:
    """Re-run the draw server-side from the frozen roster, seed and policy; show the result."""
    def build(principal: Principal) -> Response:
        if not csrf_valid(request, csrf):
            return error_page(request, principal, 403, CSRF_REFUSED)
        cid = _campaign_id(campaign_id)
        result = api_call(request, principal, routes.campaign_verify, campaign_id=cid)
        return _campaign_page(request, principal, cid, result)

    return page(request, OVERSIGHT, build)


# --------------------------------------------------------------------------- dashboard


def class_distribution_svg(counts: Mapping[str, int], labels: Mapping[str, tuple[str, str]]
                           ) -> str:
    total = sum(counts.values()) or 1
    bars = [Bar(f"{code} {labels.get(code, ('', ''))[0]}", float(n),
                CLASS_COLOURS.get(code), f" ({100 * n / total:.1f}%)")
            for code, n in counts.items()]
    return bar_chart_svg(bars, title="分类分布 / class distribution")


def drift_svg(drift: Mapping[str, Any], shown: int = DRIFT_ROWS_SHOWN) -> str | None:
    """PSI of the score and of the most-shifted inputs (every flagged one, at least `shown`),
    against the policy's flag and alert lines; the full table is in the monitoring API."""
    table = [row for row in drift.get("table", []) if row.get("psi") is not None]
    if not table or drift.get("flag") is None or drift.get("alert") is None:
        return None
    flag, alert = float(drift["flag"]), float(drift["alert"])
    ranked = sorted(table, key=lambda r: -float(r["psi"]) if math.isfinite(float(r["psi"]))
                    else 0.0)
    flagged = sum(1 for r in ranked if float(r["psi"]) >= flag)
    rows = [r for r in ranked if r.get("kind") == "score"] + [
        r for r in ranked if r.get("kind") != "score"][:max(shown, flagged)]
    return threshold_bars_svg(
        [Bar(("评分 / score" if row.get("kind") == "score" else str(row["variable"])),
             float(row["psi"])) for row in rows],
        title="群体稳定性指数 / population stability index (PSI)", flag=flag, alert=alert,
        flag_label=f"关注 / flag {flag:g}", alert_label=f"警报 / alert {alert:g}")


def _class_labels(request: Request) -> dict[str, tuple[str, str]]:
    from supervision.policy import load_policy

    policy = load_policy(request.app.state.settings.policy_path)
    return {label.code: (label.zh, label.en) for label in policy.enterprise.classes.labels}


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> Response:
    def build(principal: Principal) -> Response:
        board = api_call(request, principal, routes.dashboard)
        drift = api_call(request, principal, routes.monitoring).drift
        fairness = api_call(request, principal, routes.fairness)
        versions = api_call(request, principal, routes.model_versions)
        labels = _class_labels(request)
        chart = drift_svg(drift)
        return render(request, "dashboard.html", principal, "监管看板", "regulator dashboard",
                      board=board, labels=labels, change_labels=CHANGE_LABELS,
                      distribution=Markup(class_distribution_svg(
                          board.class_counts, labels)),
                      drift=drift, drift_chart=Markup(chart) if chart else None,
                      fairness=fairness,
                      fairness_flagged=[r for r in fairness.table if r.get("flag")],
                      versions=versions)

    return page(request, OVERSIGHT, build)
