"""The demo's shipments: one per site, its tags assigned once ingest has heard them, travelling since the simulated
day began; one is delivered at the end of the run and the path of its signed record printed (and verified)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.stack import LocalStack
from models.runtime.manifest import ModelRejected, verify_bytes

DESTINATION = "Chengdu DC"  # no gateway is placed there, so nothing arrives by itself during the demo


@dataclass
class DemoShipments:
    """Creates, starts and delivers the demo's shipments through the API as staff would."""

    stack: LocalStack
    token: str
    references: dict[str, str] = field(default_factory=dict)  # gateway id → shipment reference

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.api_url, headers={"Authorization": f"Bearer {self.token}"},
                            timeout=60)

    def start(self, since_ms: int, timeout: float = 60.0) -> list[str]:
        """A shipment per site with the site's tags, in transit since `since_ms`; what it did, in lines."""
        lines = []
        with self._http() as http:
            for gw in self.stack.gateways:
                wanted = {s.mac for s in gw.sensors}
                deadline = time.monotonic() + timeout
                while True:  # tags are known once ingest stored their first readings
                    known = {s["id"] for s in http.get("/api/v1/sensors").raise_for_status().json()}
                    if wanted <= known or time.monotonic() > deadline:
                        break
                    time.sleep(1)
                reference = f"SH-{gw.gateway_id.upper()}"
                http.post("/api/v1/shipments", json={
                    "reference": reference, "origin": gw.gateway_id, "destination": DESTINATION,
                    "customer": "成都鲜品有限公司", "product": "demo goods", "profile": gw.sensors[0].profile,
                }).raise_for_status()
                for mac in sorted(wanted & known):
                    http.post(f"/api/v1/shipments/{reference}/devices", json={"device_id": mac}).raise_for_status()
                http.post(f"/api/v1/shipments/{reference}/state",
                          json={"state": "in_transit", "at": since_ms}).raise_for_status()
                self.references[gw.gateway_id] = reference
                lines.append(f"{reference}: {len(wanted & known)} tags of {gw.gateway_id}, in transit")
        return lines

    def deliver(self, gateway_id: str) -> tuple[bool, list[str]]:
        """Deliver the shipment of `gateway_id`'s site; (the record was kept and its signature verifies, lines)."""
        reference = self.references[gateway_id]
        with self._http() as http:
            http.post(f"/api/v1/shipments/{reference}/state", json={"state": "delivered"}).raise_for_status()
            record = http.get(f"/api/v1/shipments/{reference}/record").raise_for_status().json()
            pdf = http.get(f"/api/v1/shipments/{reference}/record", params={"format": "pdf"}).raise_for_status()
            key = http.get("/api/v1/shipments/record-key").raise_for_status().content
        path = self.stack.workdir / "records" / f"shipment-{reference}.pdf"
        try:
            verify_bytes(pdf.content, pdf.headers["x-coldwatch-signature"], [key])
            signed = True
        except ModelRejected:
            signed = False
        ok = signed and Path(path).is_file() and Path(path).read_bytes() == pdf.content
        lines = [f"{reference} delivered: {record['readings']} readings from {len(record['sensors'])} tags, "
                 f"completeness {record['completeness_pct']} %, {record['time_out_of_band_s'] // 60} min out of "
                 f"range, {len(record['alerts'])} alerts",
                 f"record:        {path}  (+ .sig; public key {self.stack.api_url}/api/v1/shipments/record-key)"]
        return ok, lines
