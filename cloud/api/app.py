"""The FastAPI application factory: `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from cloud.api.admission import AdmissionLimit
from cloud.api.browser_guard import install_browser_guard
from cloud.api.deps import InfluxDep, MetricsDep, Ops
from cloud.api.errors import ERROR_RESPONSES, install_error_handlers
from cloud.api.metrics import ApiMetrics
from cloud.api.ratelimit import LoginLimiter
from cloud.api.routes import alerts, audit, auth, fleet, readings, reports, shipments, users
from cloud.api.routes import charts as chart_routes
from cloud.api.routes import dead_letters as dead_letter_routes
from cloud.api.routes import models as model_routes
from cloud.api.routes import notify as notify_routes
from cloud.api.routes import rollouts as rollout_routes
from cloud.api.routes import training as training_routes
from cloud.config import Settings, parse_proxies, silence_by_profile
from cloud.db.engine import init_schema, make_engine
from cloud.db.users import UserCreate
from cloud.notify.dispatcher import start_in_app as start_notify
from cloud.services import users as user_service
from cloud.services.retention import RetentionPolicy, start_retention
from cloud.services.shipment_record import RecordKey
from cloud.services.shipment_watch import RecordDesk, ShipmentWatch
from cloud.services.silence import SilencePolicy, SilenceWatchdog
from cloud.tsdb.influx import InfluxClient, InfluxUnavailable, influx_from_settings
from cloud.ui.install import install_ui

log = logging.getLogger(__name__)


def bootstrap_admin(engine: Engine, password: str) -> bool:
    """Create user `admin` with `password` when the database has no user at all (first start of a demo)."""
    with Session(engine) as session:
        if user_service.list_users(session):
            return False
        user_service.create_user(session, data=UserCreate(username="admin", role="admin", password=password),
                                 actor="bootstrap")
        session.commit()
    log.info("bootstrap user created user=admin role=admin (from COLDWATCH_ADMIN_PASSWORD)")
    return True


def start_rollouts(app: FastAPI, settings: Settings, engine: Engine) -> Callable[[], None]:
    """With an MQTT password: the desired-state publisher, and the rollout controller if enabled; returns stop."""
    if settings.mqtt_password is None:
        log.info("rollouts disabled in this process: no COLDWATCH_MQTT_PASSWORD")
        return lambda: None
    from cloud.mqtt_desired import MqttDesiredPublisher
    from cloud.rollout_controller import RolloutController

    publisher = app.state.desired_publisher = MqttDesiredPublisher(
        settings, client_id=f"coldwatch-api-{os.getpid()}").start()
    controller = RolloutController(engine, publisher, base_url=app.state.artifact_base_url,
                                   interval_s=settings.rollout_interval_s)
    if settings.rollout_controller:
        controller.start()

    def stop() -> None:
        controller.stop()
        publisher.close()

    return stop


def start_silence_watchdog(settings: Settings, engine: Engine) -> SilenceWatchdog | None:
    """The `gateway_silent` watchdog thread (cloud/services/silence.py), unless `silence_interval_s` is 0."""
    if settings.silence_interval_s == 0:
        return None
    policy = SilencePolicy(settings.gateway_silence_min, silence_by_profile(settings))
    return SilenceWatchdog(engine, policy, interval_s=settings.silence_interval_s).start()


def start_shipment_watch(app: FastAPI, settings: Settings, engine: Engine) -> ShipmentWatch | None:
    """The shipment watcher thread (cloud/services/shipment_watch.py), unless `shipment_interval_s` is 0."""
    if settings.shipment_interval_s == 0:
        return None
    return ShipmentWatch(engine, lambda: app.state.influx, app.state.record_desk,
                         interval_s=settings.shipment_interval_s).start()


def create_app(settings: Settings, *, influx: InfluxClient | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app for `settings`: SQL schema ensured, optional admin bootstrap.

    `influx` and `engine` replace the ones made from the settings (tests).
    """
    def own_influx() -> InfluxClient:
        return influx_from_settings(settings)

    sql = engine or make_engine(settings.database_url)
    init_schema(sql)
    if settings.admin_password:
        bootstrap_admin(sql, settings.admin_password)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if influx is None and app.state.influx.closed:  # started again after a shutdown closed it
            app.state.influx = own_influx()
        stop_rollouts = start_rollouts(app, settings, sql)
        stop_notify = start_notify(settings, sql, app.state.metrics.registry)
        watchdog = start_silence_watchdog(settings, sql)
        shipment_watch = start_shipment_watch(app, settings, sql)
        retention = start_retention(sql, RetentionPolicy(settings.retention_notifications_days,
                                                         settings.retention_audit_days, settings.retention_gaps_days))
        yield
        retention.stop()
        if shipment_watch is not None:
            shipment_watch.stop()
        if watchdog is not None:
            watchdog.stop()
        stop_notify()
        stop_rollouts()
        if influx is None:  # a client handed in belongs to the caller
            app.state.influx.close()
        if engine is None:
            sql.dispose()

    app = FastAPI(title="coldwatch", version="0.1.0", lifespan=lifespan, responses=ERROR_RESPONSES,
                  description="Cold-chain monitoring: readings, alerts workflow, fleet, reports. Authenticate with "
                              "POST /api/v1/auth/login (session cookie) or `Authorization: Bearer <token>`.")
    app.state.settings = settings
    app.state.influx = influx or own_influx()
    app.state.engine = sql
    app.state.metrics = ApiMetrics()
    app.state.desired_publisher = None  # set in the lifespan when the API has an MQTT account
    app.state.artifact_base_url = settings.artifact_base_url or f"http://{settings.api_host}:{settings.api_port}"
    app.state.login_limiter = LoginLimiter(max_failures=settings.login_max_failures,
                                           window_s=settings.login_window_s)
    app.state.trusted_proxies = parse_proxies(settings.api_trusted_proxies)
    app.state.record_desk = RecordDesk(RecordKey(Path(settings.record_signing_key)), Path(settings.records_dir),
                                       public_key_url=f"{app.state.artifact_base_url}{shipments.RECORD_KEY_PATH}")
    install_error_handlers(app)
    install_browser_guard(app, hsts=settings.cookie_secure)
    for module in (auth, users, readings, alerts, fleet, reports, shipments, audit, model_routes, rollout_routes,
                   training_routes, notify_routes, dead_letter_routes):
        app.include_router(module.router)
    app.include_router(chart_routes.router)
    install_ui(app)  # the staff dashboard: pages, /ui/events, /ui/static

    @app.get("/healthz", tags=["ops"], summary="Liveness and InfluxDB reachability")
    def healthz(influx: InfluxDep) -> JSONResponse:
        """200 when InfluxDB answers /ping, else 503."""
        try:
            influx.ping()
        except InfluxUnavailable:
            return JSONResponse(status_code=503, content={"status": "unavailable", "influx": "unavailable"})
        return JSONResponse(content={"status": "ok", "influx": "ok"})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    def metrics(api_metrics: MetricsDep, _user: Ops) -> Response:
        """Prometheus text exposition of this app's counters (an ops token: Prometheus's `authorization`)."""
        return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(AdmissionLimit)  # outermost: no more requests in handling than worker threads (admission.py)
    return app
