"""The JSON API under /api: one router per area, each endpoint with its roles.

Who may see what (`tests/api` asserts every cell of this matrix):

* public: health, version, login, a campaign's masked publication export;
* inspector: their own ranked list, and an enterprise only when it is on that list;
* regulator and admin: every enterprise, projects, campaigns, trigger cases, audit,
  monitoring, fairness, model cards, on-demand scoring;
* admin: users and tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import Engine, text

from serving.api import auth, decisions
from serving.api.auth import Principal, Role, current_principal, require_roles
from serving.api.cache import CachedDecision, ServiceCache
from serving.api.deps import get_engine, get_settings
from serving.api.schemas import (
    AuditEventOut,
    CampaignSummary,
    CampaignView,
    ChainReportOut,
    Dashboard,
    DrawnTarget,
    DrawView,
    EnterpriseDecision,
    FairnessOut,
    Health,
    InspectorList,
    ModelCard,
    ModelVersionOut,
    MonitoringOut,
    PrincipalOut,
    ProjectDecision,
    ProjectMatrix,
    Reason,
    ReplayOut,
    Rows,
    ScoreRequest,
    ScoreResponse,
    Stratum,
    TokenResponse,
    UserCreate,
    VerificationCheck,
    VerificationOut,
    VersionInfo,
)
from serving.settings import Settings

EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AnyUser = Annotated[Principal, Depends(current_principal)]
Regulator = Annotated[Principal, Depends(require_roles(Role.regulator, Role.admin))]
Admin = Annotated[Principal, Depends(require_roles(Role.admin))]
Uscc = Annotated[str, Path(min_length=1, max_length=18, description="统一社会信用代码 / USCC")]
CampaignId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
MAX_ROWS = 5000


def get_cache(request: Request) -> ServiceCache:
    cache: ServiceCache = request.app.state.cache
    return cache


CacheDep = Annotated[ServiceCache, Depends(get_cache)]


def _ranked_build(cache: ServiceCache) -> pd.DataFrame:
    return decisions.ranked_lists_frame(cache.settings)


def _ranked(cache: ServiceCache) -> pd.DataFrame:
    return cache.ranked_lists(lambda: _ranked_build(cache))


def _records(frame: pd.DataFrame, limit: int = MAX_ROWS) -> Rows:
    """A frame as JSON-ready rows (dates as ISO text, NaN as null)."""
    shown = frame.head(limit)
    rows = json.loads(shown.to_json(orient="records", date_format="iso", force_ascii=False,
                                    default_handler=str))
    return Rows(columns=[str(c) for c in shown.columns], rows=rows)


# --------------------------------------------------------------------------- system

system = APIRouter(prefix="/api", tags=["system / 系统"])


@system.get("/health", response_model=Health)
def health(engine: EngineDep, cache: CacheDep) -> Health:
    """服务状态 / liveness and the run readers currently see (public)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    run = cache.latest_run()
    return Health(status="ok", database="ok", latest_run_id=run.id if run else None,
                  latest_as_of=run.as_of if run else None)


@system.get("/version", response_model=VersionInfo)
def version(cache: CacheDep) -> VersionInfo:
    """版本 / software version and the model and policy behind the published run (public)."""
    from serving.api.app import package_version

    run = cache.latest_run()
    return VersionInfo(riskmatrix=package_version(),
                       model_name=run.model_name if run else None,
                       model_version=run.model_version if run else None,
                       policy_version=run.policy_version if run else None,
                       policy_hash=run.policy_hash if run else None)


# --------------------------------------------------------------------------- auth and users

accounts = APIRouter(prefix="/api", tags=["auth / 认证"])


@accounts.post("/auth/token", response_model=TokenResponse)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()],
          engine: EngineDep) -> TokenResponse:
    """登录换取令牌 / OAuth2 password flow: username + password → bearer token."""
    principal = auth.authenticate(engine, form.username, form.password)
    if principal is None:
        raise HTTPException(status_code=401, detail="用户名或密码错误 / wrong username or "
                            "password", headers={"WWW-Authenticate": "Bearer"})
    token = auth.issue_token(engine, principal)
    return TokenResponse(access_token=token, expires_in=int(
        auth.DEFAULT_TOKEN_TTL.total_seconds()), username=principal.username,
        role=principal.role.value)


@accounts.post("/auth/logout", status_code=204)
def logout(request: Request, principal: AnyUser, engine: EngineDep) -> Response:
    """注销当前令牌 / revoke the token of this request."""
    del principal
    token = auth.request_token(request)
    if token:
        auth.revoke_token(engine, token)
    return Response(status_code=204)


@accounts.get("/me", response_model=PrincipalOut)
def me(principal: AnyUser) -> PrincipalOut:
    """当前用户 / who this token belongs to."""
    return PrincipalOut(username=principal.username, role=principal.role.value,
                        inspector_id=principal.inspector_id)


@accounts.get("/users", response_model=list[PrincipalOut])
def users(_admin: Admin, engine: EngineDep) -> list[PrincipalOut]:
    """用户列表 / active users (admin)."""
    return [PrincipalOut(username=p.username, role=p.role.value, inspector_id=p.inspector_id)
            for p in auth.list_users(engine)]


@accounts.post("/users", response_model=PrincipalOut, status_code=201)
def create_user(body: UserCreate, _admin: Admin, engine: EngineDep) -> PrincipalOut:
    """新建用户 / create a user (admin); an inspector needs their inspector_id."""
    try:
        created = auth.add_user(engine, body.username, body.role, body.password,
                                body.inspector_id)
    except auth.AuthError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    return PrincipalOut(username=created.username, role=created.role.value,
                        inspector_id=created.inspector_id)


@accounts.post("/users/{username}/tokens", response_model=TokenResponse, status_code=201)
def create_token(username: Annotated[str, Path(max_length=64)], _admin: Admin,
                 engine: EngineDep) -> TokenResponse:
    """为用户签发令牌 / issue a token for a user (admin), e.g. for another system."""
    principal = auth.get_user(engine, username)
    if principal is None:
        raise HTTPException(status_code=404, detail=f"用户 {username} 不存在 / no user "
                            f"{username}")
    token = auth.issue_token(engine, principal)
    return TokenResponse(access_token=token, expires_in=int(
        auth.DEFAULT_TOKEN_TTL.total_seconds()), username=username, role=principal.role.value)


@accounts.delete("/users/{username}", status_code=204)
def delete_user(username: Annotated[str, Path(max_length=64)], admin: Admin,
                engine: EngineDep) -> Response:
    """停用用户并吊销其令牌 / deactivate a user and revoke their tokens (admin)."""
    if username == admin.username:
        raise HTTPException(status_code=422, detail="不能停用自己 / you cannot deactivate "
                            "yourself")
    if not auth.deactivate_user(engine, username):
        raise HTTPException(status_code=404, detail=f"用户 {username} 不存在 / no user "
                            f"{username}")
    return Response(status_code=204)


# --------------------------------------------------------------------------- enterprises

enterprises = APIRouter(prefix="/api", tags=["enterprises / 企业"])


def enterprise_name(cache: ServiceCache, uscc: str) -> str | None:
    """The registered name from the current snapshot (None when there is none)."""
    return cache.enterprise_name(uscc)


FORBIDDEN_ENTERPRISE = ("该企业不在您的检查清单上 / this enterprise is not on your inspection "
                        "list")


def _enterprise_view(cache: ServiceCache, principal: Principal, uscc: str) -> CachedDecision:
    """The decision `principal` may read (403 when not theirs, 404 when none); may load."""
    if not decisions.may_read_enterprise(
            principal, uscc,
            lambda inspector: cache.inspector_targets(inspector, lambda: _ranked_build(cache))):
        raise HTTPException(status_code=403, detail=FORBIDDEN_ENTERPRISE)
    return cache.decision(uscc)


def _cached_enterprise_view(cache: ServiceCache, principal: Principal,
                            uscc: str) -> CachedDecision | None:
    """`_enterprise_view` from memory only; None when something must be loaded first."""
    if principal.role is Role.inspector and principal.inspector_id is not None:
        targets = cache.cached_inspector_targets(principal.inspector_id)
        if targets is None:
            return None
        if not decisions.may_read_enterprise(principal, uscc, lambda _: targets):
            raise HTTPException(status_code=403, detail=FORBIDDEN_ENTERPRISE)
    elif not decisions.may_read_enterprise(principal, uscc, lambda _: set()):
        raise HTTPException(status_code=403, detail=FORBIDDEN_ENTERPRISE)
    return cache.cached_decision(uscc)


def enterprise(uscc: Uscc, principal: AnyUser, engine: EngineDep,
               cache: CacheDep) -> EnterpriseDecision:
    """The enterprise read for callers inside the process (the web pages): same roles, same
    cache, same audit record as `GET /api/enterprises/{uscc}`."""
    uscc = uscc.strip().upper()
    view = _enterprise_view(cache, principal, uscc)
    decisions.record_read(engine, principal, uscc, "enterprise", run_id=view.run_id,
                          as_of=view.as_of)
    return view.decision


@enterprises.get("/enterprises/{uscc}", response_model=EnterpriseDecision,
                 responses={401: {"description": "未登录 / not signed in"},
                            403: {"description": "不在清单上 / not on the inspector's list"},
                            404: {"description": "没有决定 / no decision"}})
async def enterprise_read(uscc: Uscc, request: Request) -> Response:
    """企业当前分类、概率、原因与历史 / an enterprise's class, probability, SHAP reasons and
    class history. Inspectors: only firms on their own lists.

    The hot read path: the decision of the published run is serialised once and kept; the
    read record is committed (group commit, shared with concurrent reads) before the answer
    leaves."""
    principal = await auth.current_principal_async(request)
    cache: ServiceCache = request.app.state.cache
    uscc = uscc.strip().upper()
    view = _cached_enterprise_view(cache, principal, uscc)
    if view is None:
        view = await run_in_threadpool(_enterprise_view, cache, principal, uscc)
    await decisions.record_read_async(request.app.state.engine, principal, uscc, "enterprise",
                                      run_id=view.run_id, as_of=view.as_of)
    return Response(view.body, media_type="application/json")


@enterprises.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest, principal: Regulator, engine: EngineDep,
                cache: CacheDep) -> Response:
    """按需评分 / score a submitted enterprise record with the champion: validated with the
    contract's ingest rules (422 names table, row, column and rule), returns probability,
    class and SHAP reasons with the model and policy versions."""
    # CPU-bound pandas work holds the GIL: scorings run one after another on the app's own
    # scoring thread and waiting requests hold no thread (32 parked threads cut throughput).
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(cache.scoring_executor, score_response, body, engine,
                                        cache)
    # The read record joins the enterprise reads' group commit on the loop (no hop to the
    # writer thread) and is committed before the answer leaves.
    await decisions.record_read_async(engine, principal, result.uscc, "on_demand_score",
                                      as_of=result.as_of)
    return Response(result.model_dump_json(), media_type="application/json")


def score_response(body: ScoreRequest, engine: Engine, cache: ServiceCache) -> ScoreResponse:
    """`POST /api/score`'s answer computed in the calling thread (the caller records the
    read): validation, features, score, class and reasons."""
    from serving.api.ondemand import score_record, validate_record
    from serving.nightly import DEFAULT_TOP_K
    from training.enterprise import REGISTERED_NAME

    context = cache.on_demand()
    model, model_version = cache.champion()
    typed = validate_record(body.enterprise, body.events, body.inspections,
                            context.inspector_ids)
    run = cache.latest_run()
    uscc = str(typed["enterprises"].iloc[0]["uscc"])
    previous = decisions.published_class(engine, run, uscc) if run is not None else None
    result = score_record(context, model, typed, body.as_of, previous,
                          run.top_k if run is not None else DEFAULT_TOP_K)
    row = result.scores
    return ScoreResponse(
        uscc=uscc, as_of=result.as_of.date(), probability=float(row["probability"]),
        risk_class=str(row["class"]), score_class=str(row["score_class"]),
        overrides=[o for o in str(row["overrides"]).split(",") if o],
        class_reason_zh=str(row["class_reason_zh"]), class_reason_en=str(row["class_reason_en"]),
        model_name=REGISTERED_NAME, model_version=model_version,
        policy_version=context.policy.version, policy_hash=context.policy.content_hash,
        input_hash=str(row["input_hash"]),
        reasons=[Reason(rank=int(r["rank"]), feature=str(r["feature"]),
                        value=decisions._finite(r["value"]),
                        contribution=float(r["contribution"]),
                        raises_risk=bool(r["raises_risk"]), reason_code=str(r["reason_code"]),
                        text_zh=str(r["text_zh"]), text_en=str(r["text_en"]))
                 for r in result.reasons.to_dict(orient="records")])


# --------------------------------------------------------------------------- inspector lists

lists = APIRouter(prefix="/api", tags=["inspection lists / 检查清单"])


def _list_for(principal: Principal, inspector_id: str, engine: Engine, settings: Settings,
              cache: ServiceCache) -> InspectorList:
    if principal.role is Role.inspector and principal.inspector_id != inspector_id:
        raise HTTPException(status_code=403, detail="检查员只能查看自己的清单 / inspectors "
                            "see only their own list")
    result = decisions.inspector_list(engine, settings, inspector_id, ranked=_ranked(cache))
    decisions.record_read(engine, principal, f"inspector:{inspector_id}", "inspector_list")
    return result


@lists.get("/me/list", response_model=InspectorList)
def my_list(principal: Annotated[Principal, Depends(require_roles(Role.inspector))],
            engine: EngineDep, settings: SettingsDep, cache: CacheDep) -> InspectorList:
    """我的检查清单 / the signed-in inspector's ranked list."""
    return _list_for(principal, principal.inspector_id or "", engine, settings, cache)


@lists.get("/inspectors/{inspector_id}/list", response_model=InspectorList)
def inspector_list(inspector_id: Annotated[str, Path(max_length=64)], principal: AnyUser,
                   engine: EngineDep, settings: SettingsDep, cache: CacheDep) -> InspectorList:
    """执法人员的排序检查清单 / an inspector's ranked targets with class and top reasons
    (inspectors: only their own)."""
    return _list_for(principal, inspector_id, engine, settings, cache)


# --------------------------------------------------------------------------- projects

projects = APIRouter(prefix="/api", tags=["projects / 工程项目"])


PROJECT_MATRIX_TTL_SECONDS = 300.0


def _project_matrix(engine: Engine, settings: Settings, cache: ServiceCache) -> ProjectMatrix:
    """The matrix of the published run, computed once per run (per app) and reused."""
    run = cache.latest_run()
    key = f"project_matrix:{run.id if run else None}"
    matrix: ProjectMatrix = cache.memo(
        key, lambda: decisions.project_matrix(engine, settings), PROJECT_MATRIX_TTL_SECONDS)
    return matrix


@projects.get("/projects", response_model=ProjectMatrix)
def project_list(principal: Regulator, engine: EngineDep, settings: SettingsDep,
                 cache: CacheDep) -> ProjectMatrix:
    """工程风险矩阵 / every active project's grades, cell, level, interval and due date."""
    matrix = _project_matrix(engine, settings, cache)
    decisions.record_read(engine, principal, "projects", "project_matrix",
                          as_of=matrix.as_of)
    return matrix


@projects.get("/projects/{project_id}", response_model=ProjectDecision)
def project(project_id: Annotated[str, Path(max_length=64)], principal: Regulator,
            engine: EngineDep, settings: SettingsDep, cache: CacheDep) -> ProjectDecision:
    """一个项目的定级 / one project's grades, cell, level, interval, due date and reasons."""
    decision = decisions.project_decision(engine, settings, project_id,
                                          matrix=_project_matrix(engine, settings, cache))
    decisions.record_read(engine, principal, project_id, "project", as_of=decision.as_of)
    return decision


# --------------------------------------------------------------------------- campaigns

campaigns = APIRouter(prefix="/api", tags=["campaigns / 双随机抽查"])


@campaigns.get("/campaigns", response_model=list[CampaignSummary])
def campaign_list(_user: Regulator, settings: SettingsDep) -> list[CampaignSummary]:
    """抽查任务列表 / every campaign and its current step."""
    return decisions.campaign_summaries(settings)


@campaigns.get("/campaigns/{campaign_id}", response_model=CampaignView)
def campaign_plan(campaign_id: CampaignId, _user: Regulator,
                  settings: SettingsDep) -> CampaignView:
    """抽查计划与承诺 / the plan: spec, steps, commitment digest, revealed seed, strata."""
    return decisions.campaign_view(settings, campaign_id)


@campaigns.get("/campaigns/{campaign_id}/commitment", response_model=dict[str, Any])
def campaign_commitment(campaign_id: CampaignId, _user: Regulator,
                        settings: SettingsDep) -> dict[str, Any]:
    """承诺 (抽取前公布) / the commitment published before the draw, with its digest."""
    commitment = decisions.open_campaign(settings, campaign_id).commitment()
    return {"digest": commitment.digest(), **commitment.model_dump(mode="json")}


@campaigns.get("/campaigns/{campaign_id}/draw", response_model=DrawView)
def campaign_draw(campaign_id: CampaignId, principal: Regulator, engine: EngineDep,
                  settings: SettingsDep) -> DrawView:
    """抽取证据 (内部, 含分类) / the draw: seed, strata and drawn firms with class and
    inclusion probability (internal)."""
    campaign = decisions.open_campaign(settings, campaign_id)
    evidence = campaign.evidence()
    decisions.record_read(engine, principal, f"campaign:{campaign_id}", "campaign_draw")
    return DrawView(
        campaign_id=campaign_id, seed=evidence.seed, public_entropy=evidence.public_entropy,
        drawn_at=evidence.drawn_at.isoformat(), commitment_digest=evidence.commitment.digest(),
        strata=[Stratum(**s.model_dump()) for s in evidence.strata],
        drawn=[DrawnTarget(uscc=d.uscc, risk_class=d.class_, stratum=d.stratum,
                           inclusion_probability=d.inclusion_probability, key=d.key)
               for d in evidence.drawn])


@campaigns.post("/campaigns/{campaign_id}/verify", response_model=VerificationOut)
def campaign_verify(campaign_id: CampaignId, principal: Regulator, engine: EngineDep,
                    settings: SettingsDep) -> VerificationOut:
    """验证抽取 / recompute the draw from the frozen roster, seed and policy and compare it
    with the evidence and the published commitment."""
    from serving.audit import append_event
    from serving.campaign_store import CampaignStore, verify_stored

    decisions.open_campaign(settings, campaign_id).evidence()
    result = verify_stored(CampaignStore(settings.campaigns), campaign_id)
    append_event(engine, "campaign.verify", {"reader": principal.username,
                                             "role": principal.role.value,
                                             "match": result.match},
                 entity=f"campaign:{campaign_id}")
    return VerificationOut(campaign_id=campaign_id, match=result.match,
                           checks=[VerificationCheck(name=c.name, ok=c.ok, detail=c.detail)
                                   for c in result.checks], summary=result.summary())


@campaigns.get("/campaigns/{campaign_id}/assignment", response_model=Rows)
def campaign_assignment(campaign_id: CampaignId, _user: Regulator,
                        settings: SettingsDep) -> Rows:
    """执法人员分配 / inspectors per drawn firm."""
    return _records(decisions.open_campaign(settings, campaign_id).assignment())


@campaigns.get("/campaigns/{campaign_id}/results", response_model=Rows)
def campaign_results(campaign_id: CampaignId, _user: Regulator,
                     settings: SettingsDep) -> Rows:
    """检查结果 (内部) / recorded outcomes per visit and item."""
    return _records(decisions.open_campaign(settings, campaign_id).results())


@campaigns.get("/public/campaigns/{campaign_id}/publication", response_model=Rows)
def campaign_publication(campaign_id: CampaignId, settings: SettingsDep) -> Rows:
    """公示 (公开, 无分类) / the masked public results export: no class, probability or
    reasons (public, no sign-in)."""
    from serving.campaign_store import EXPORT_JSON

    campaign = decisions.open_campaign(settings, campaign_id)
    path = campaign.file(EXPORT_JSON)
    if not path.is_file():
        raise decisions.NotFoundError(
            f"抽查任务 {campaign_id} 尚未公示结果 / campaign {campaign_id} has not published "
            "results yet")
    return _records(pd.DataFrame(json.loads(path.read_text(encoding="utf-8"))))


@campaigns.get("/public/campaigns/{campaign_id}/notice", response_model=dict[str, Any])
def campaign_notice(campaign_id: CampaignId, settings: SettingsDep) -> dict[str, Any]:
    """抽取公告 (公开) / the public draw notice: hashes, seed, drawn codes — no classes."""
    from serving.campaign_store import NOTICE

    campaign = decisions.open_campaign(settings, campaign_id)
    path = campaign.file(NOTICE)
    if not path.is_file():
        raise decisions.NotFoundError(f"抽查任务 {campaign_id} 尚未抽取 / campaign "
                                      f"{campaign_id} has not been drawn yet")
    notice: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return notice


# --------------------------------------------------------------------------- trigger cases

triggers = APIRouter(prefix="/api", tags=["trigger cases / 触发式监管"])


@triggers.get("/triggers/cases", response_model=Rows)
def trigger_cases(principal: Regulator, engine: EngineDep, settings: SettingsDep,
                  status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None
                  ) -> Rows:
    """触发案件 / the digital-economy trigger cases with their evidence (open, closed, all)."""
    from serving import store

    reader = getattr(store, "trigger_cases_frame", None)
    frame = reader(engine) if reader is not None else None
    if frame is None or len(frame) == 0:
        from serving.case_store import load_case_book

        frame = load_case_book(settings)
    if status is not None and "status" in frame.columns:
        frame = frame[frame["status"].astype(str) == status]
    decisions.record_read(engine, principal, "trigger_cases", "trigger_cases")
    return _records(frame)


# --------------------------------------------------------------------------- audit

audit = APIRouter(prefix="/api/audit", tags=["audit / 审计"])


@audit.get("/verify", response_model=ChainReportOut)
def audit_verify(_user: Regulator, engine: EngineDep) -> ChainReportOut:
    """校验审计链 / recompute the whole hash chain and check the run anchors."""
    from serving.audit import verify_chain

    report = verify_chain(engine)
    problem = report.problem
    return ChainReportOut(ok=report.ok, records=report.records, head_seq=report.head_seq,
                          head_hash=report.head_hash, anchors_checked=report.anchors_checked,
                          problem_seq=problem.seq if problem else None,
                          problem=problem.problem if problem else None,
                          message=report.describe())


@audit.get("/replay/{uscc}", response_model=ReplayOut)
def audit_replay(uscc: Uscc, principal: Regulator, engine: EngineDep,
                 settings: SettingsDep, as_of: Annotated[dt.date, Query()]) -> ReplayOut:
    """重放决定 / rebuild a published decision from its snapshot, model version and policy
    and compare it field by field with the audit record."""
    from serving.nightly import _replay

    uscc = uscc.strip().upper()
    report = _replay(settings, engine, uscc, as_of)
    decisions.record_read(engine, principal, uscc, "audit_replay", run_id=report.run_id,
                          as_of=as_of)
    return ReplayOut(uscc=report.uscc, as_of=report.as_of, run_id=report.run_id,
                     matches=report.matches,
                     differences=[{"field": d.field, "recorded": d.recorded,
                                   "replayed": d.replayed} for d in report.differences],
                     notes=report.notes, replayed=report.replayed)


@audit.get("/entities/{entity}", response_model=list[AuditEventOut])
def audit_history(entity: Annotated[str, Path(max_length=64)], _user: Regulator,
                  engine: EngineDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  reads: Annotated[bool, Query(description=(
                      "包含查阅记录 / include the reads of its decisions (false: decisions "
                      "and actions only)"))] = True) -> list[AuditEventOut]:
    """一个实体的决定与查阅记录 / the audit records of one entity (decisions, reads, actions)."""
    from serving.audit import records

    return [AuditEventOut(seq=r.seq, kind=r.kind, recorded_at=r.recorded_at, entity=r.entity,
                          as_of=r.as_of, run_id=r.run_id, payload=r.payload, hash=r.hash)
            for r in records(engine, entity=entity.strip(), limit=limit, include_reads=reads)]


# --------------------------------------------------------------------------- models, monitoring

models = APIRouter(prefix="/api", tags=["models and monitoring / 模型与监测"])


def _registered_names() -> tuple[str, ...]:
    from serving.cli_project import REGISTERED_NAME as PROJECT_MODEL
    from training.enterprise import REGISTERED_NAME as ENTERPRISE_MODEL

    return (ENTERPRISE_MODEL, PROJECT_MODEL)


@models.get("/models", response_model=list[ModelVersionOut])
def model_versions(_user: Regulator, settings: SettingsDep) -> list[ModelVersionOut]:
    """模型版本 / every registered version of the enterprise and project models."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from training.registry import configure_mlflow

    configure_mlflow(settings.home, settings.mlflow_uri)
    client = MlflowClient()
    out = []
    for name in _registered_names():
        try:
            versions = client.search_model_versions(f"name='{name}'")
            aliases = dict(client.get_registered_model(name).aliases or {})
        except MlflowException:
            continue
        for v in sorted(versions, key=lambda v: int(v.version)):
            metrics: dict[str, float] = {}
            if v.run_id:
                try:
                    metrics = dict(client.get_run(v.run_id).data.metrics)
                except MlflowException:
                    metrics = {}
            created = (dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC)
                       .isoformat() if v.creation_timestamp else None)
            out.append(ModelVersionOut(
                name=name, version=str(v.version),
                aliases=sorted(a for a, n in aliases.items() if str(n) == str(v.version)),
                run_id=v.run_id, created_at=created,
                policy_version=(v.tags or {}).get("policy_version"), metrics=metrics))
    return out


@models.get("/models/{name}/versions/{model_version}/card", response_model=ModelCard)
def model_card(name: Annotated[str, Path(max_length=128)],
               model_version: Annotated[str, Path(pattern=r"^[0-9]{1,9}$")],
               _user: Regulator, settings: SettingsDep) -> ModelCard:
    """模型卡 / the model card (Markdown) logged with a registered version."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from training.registry import configure_mlflow

    if name not in _registered_names():
        raise decisions.NotFoundError(f"没有注册模型 {name} / no registered model {name}")
    configure_mlflow(settings.home, settings.mlflow_uri)
    try:
        run_id = MlflowClient().get_model_version(name, model_version).run_id
        markdown = mlflow.artifacts.load_text(f"runs:/{run_id}/model_card.md")
    except (MlflowException, OSError):
        raise decisions.NotFoundError(f"模型 {name} 没有版本 {model_version} 的模型卡 / no "
                                      f"model card for {name} version {model_version}") from None
    return ModelCard(name=name, version=model_version, markdown=markdown)


@models.get("/monitoring", response_model=MonitoringOut)
def monitoring(_user: Regulator, cache: CacheDep, engine: EngineDep) -> MonitoringOut:
    """监测 / PSI drift of inputs and score and the class transition matrix of the latest run."""
    from serving.store import monitoring_payloads

    run = cache.latest_run()
    payloads = monitoring_payloads(engine, run) if run else {}
    return MonitoringOut(run_id=run.id if run else None, as_of=run.as_of if run else None,
                         drift=payloads.get("drift", {}),
                         transitions=payloads.get("transitions", {}))


@models.get("/fairness", response_model=FairnessOut)
def fairness(_user: Regulator, cache: CacheDep, engine: EngineDep) -> FairnessOut:
    """公平性 / the fairness report on the live classes of the latest run."""
    from serving.store import monitoring_payloads

    run = cache.latest_run()
    payload = monitoring_payloads(engine, run).get("fairness", {}) if run else {}
    return FairnessOut(run_id=run.id if run else None, as_of=run.as_of if run else None,
                       flags=int(payload.get("flags", 0)), table=payload.get("table", []))


@models.get("/dashboard", response_model=Dashboard)
def dashboard(_user: Regulator, engine: EngineDep) -> Dashboard:
    """监管看板 / class distribution, drift, fairness, transitions and recent runs."""
    return decisions.regulator_dashboard(engine)


def api_routers() -> list[APIRouter]:
    return [system, accounts, enterprises, lists, projects, campaigns, triggers, audit, models]
