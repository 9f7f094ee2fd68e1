"""Thermal and humidity model of monitored cold spaces, stepped for many spaces at once with numpy.

Each space is two nodes: the air (what a tag measures) and the load (goods, thermal inertia).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from protocol.profiles import PROFILES

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Longest thermal step: keeps explicit Euler stable for the fastest process (door air exchange).
MAX_STEP_S: Final = 60.0
# Air ↔ load heat exchange rate (1/s): packaged goods exchange heat with the air in about an hour.
AIR_LOAD_RATE: Final = 1.0 / 2400.0
# Air exchange through an open door: the air relaxes toward ambient with this time constant.
DOOR_TAU_S: Final = 1200.0
# The goods hold the air temperature back; nothing holds the moisture back (warm air brings it in).
DOOR_MOISTURE_FACTOR: Final = 3.0
# Moisture: infiltration, product (respiration/hygroscopic goods), evaporator drying, melt water.
INFILTRATION_RATE: Final = 1.0 / 200000.0
PRODUCT_MOISTURE_RATE: Final = 1.0 / 1800.0
COIL_DRYING_RATE: Final = 1.0 / 1500.0
# The evaporator runs ~7 °C below the air: saturation there is ~60 % of the air's.
COIL_SATURATION_RATIO: Final = 0.6
DEFROST_MELT_RATE: Final = 1.0 / 300.0


@dataclass(frozen=True)
class ProfilePhysics:
    """The equipment typical for one asset profile (°C, seconds, °C/s)."""

    hysteresis_c: float
    tau_wall_s: float  # insulation: air relaxes to ambient with this time constant
    cooling_c_per_s: float  # compressor capacity on the air node
    heating_c_per_s: float  # winter heater (reefers heat chilled cargo); 0 = none
    load_ratio: float  # load heat capacity / air heat capacity (loaded space)
    defrost_every_s: float  # 0 = no defrost
    defrost_duration_s: float
    defrost_c_per_s: float  # evaporator heater; ~0 for off-cycle defrost
    rh_target_pct: float  # where the goods hold the humidity
    door_rate_per_day: float  # short, benign openings (loading, picking)


PHYSICS: Final[dict[str, ProfilePhysics]] = {
    "frozen": ProfilePhysics(1.5, 6 * 3600, 0.010, 0.0, 6.0, 8 * 3600, 30 * 60, 0.0045, 65.0, 3.0),
    "chilled": ProfilePhysics(0.8, 4 * 3600, 0.008, 0.004, 6.0, 6 * 3600, 20 * 60, 0.0005, 88.0, 5.0),
    "pharma_2_8": ProfilePhysics(1.0, 5 * 3600, 0.007, 0.004, 4.0, 12 * 3600, 15 * 60, 0.0008, 55.0, 3.0),
    "ambient": ProfilePhysics(1.5, 3 * 3600, 0.006, 0.006, 3.0, 0.0, 0.0, 0.0, 45.0, 6.0),
}


def saturation_vapour_pa(temp_c: FloatArray) -> FloatArray:
    """Magnus formula (over water, as humidity sensors report), Pa."""
    return 611.2 * np.exp(17.62 * temp_c / (243.12 + temp_c))


@dataclass
class SpaceParams:
    """Per-space constants, one entry per space (arrays of shape (S,))."""

    hysteresis_c: FloatArray
    tau_wall_s: FloatArray
    cooling_c_per_s: FloatArray
    heating_c_per_s: FloatArray
    load_ratio: FloatArray
    defrost_c_per_s: FloatArray
    rh_target_pct: FloatArray

    @classmethod
    def for_profiles(cls, profiles: list[str], rng: np.random.Generator) -> SpaceParams:
        """Typical equipment for each space's profile, each unit ±15 % different (seeded)."""
        table = [PHYSICS[p] for p in profiles]
        n = len(profiles)

        def col(name: str, spread: float = 0.15) -> FloatArray:
            base = np.array([getattr(t, name) for t in table], dtype=np.float64)
            return base * rng.uniform(1 - spread, 1 + spread, n)

        return cls(
            hysteresis_c=col("hysteresis_c", 0.0), tau_wall_s=col("tau_wall_s"),
            cooling_c_per_s=col("cooling_c_per_s"), heating_c_per_s=col("heating_c_per_s"),
            load_ratio=col("load_ratio", 0.5), defrost_c_per_s=col("defrost_c_per_s"),
            rh_target_pct=col("rh_target_pct", 0.05),
        )


@dataclass
class Drivers:
    """What acts on each space at each thermal step; arrays of shape (T, S), time-major."""

    ambient_c: FloatArray
    ambient_rh_pct: FloatArray
    setpoint_c: FloatArray
    capacity: FloatArray  # 1 healthy compressor, <1 leaking refrigerant, 0 failed
    powered: BoolArray  # False: power / genset loss (nothing runs)
    door_open: BoolArray
    defrost: BoolArray  # defrost heater on, compressor locked out

    @property
    def steps(self) -> int:
        """Number of thermal steps."""
        return int(self.ambient_c.shape[0])


@dataclass
class SpaceState:
    """The evolving state of each space (arrays of shape (S,)); carried across simulate() calls."""

    air_c: FloatArray
    load_c: FloatArray
    vapour_pa: FloatArray
    cooling: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    heating: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def settled(cls, setpoint_c: FloatArray, params: SpaceParams, rng: np.random.Generator) -> SpaceState:
        """Spaces running normally at their setpoint, each at a random point of its compressor cycle."""
        air = setpoint_c + rng.uniform(-1.0, 1.0, setpoint_c.shape) * params.hysteresis_c
        vapour = params.rh_target_pct / 100.0 * saturation_vapour_pa(air)
        return cls(air, setpoint_c.copy(), vapour, rng.random(setpoint_c.shape) < 0.3,
                   np.zeros(setpoint_c.shape, dtype=bool))

    @classmethod
    def at_ambient(cls, ambient_c: FloatArray, ambient_rh_pct: FloatArray) -> SpaceState:
        """Spaces that have just been switched on (pre-cooling): everything at ambient."""
        vapour = ambient_rh_pct / 100.0 * saturation_vapour_pa(ambient_c)
        zeros = np.zeros(ambient_c.shape, dtype=bool)
        return cls(ambient_c.copy(), ambient_c.copy(), vapour, zeros, zeros.copy())


@dataclass
class Trajectory:
    """Recorded true state at every `record_every`-th step; arrays of shape (T_rec, S)."""

    air_c: FloatArray
    rh_pct: FloatArray
    cooling: BoolArray


def simulate(params: SpaceParams, drivers: Drivers, state: SpaceState, *, dt_s: float,
             record_every: int = 1) -> Trajectory:
    """Step every space through `drivers` (explicit Euler, `dt_s` ≤ MAX_STEP_S); `state` is updated in place.

    The thermostat switches the compressor on above setpoint + hysteresis and off below
    setpoint − hysteresis; a heater (where fitted) holds the low side the same way. Air gains heat
    through the walls (insulation), from the load, through an open door and from a defrost heater.
    Humidity is tracked as vapour pressure, so it responds physically to warming (RH falls),
    the evaporator (dries), an open door (ambient moisture) and defrost melt water (RH rises).
    """
    if not 0 < dt_s <= MAX_STEP_S:
        raise ValueError(f"dt_s must be in (0, {MAX_STEP_S}]")
    steps, n = drivers.ambient_c.shape
    rec = (steps + record_every - 1) // record_every
    out_air = np.empty((rec, n))
    out_rh = np.empty((rec, n))
    out_cool = np.empty((rec, n), dtype=bool)
    # Everything that does not depend on the state is computed for all steps at once.
    on_power = drivers.powered & ~drivers.defrost
    heat_loss_rate = (1.0 / params.tau_wall_s + drivers.door_open / DOOR_TAU_S) * dt_s
    cool_step = drivers.capacity * on_power * params.cooling_c_per_s * dt_s
    heat_step = on_power * params.heating_c_per_s * dt_s
    defrost_on = drivers.defrost & drivers.powered
    defrost_step = defrost_on * params.defrost_c_per_s * dt_s
    melt_rate = defrost_on * DEFROST_MELT_RATE * dt_s
    drying_rate = drivers.capacity * on_power * COIL_DRYING_RATE * dt_s
    amb_vapour = drivers.ambient_rh_pct / 100.0 * saturation_vapour_pa(drivers.ambient_c)
    moisture_exchange = (INFILTRATION_RATE + drivers.door_open * DOOR_MOISTURE_FACTOR / DOOR_TAU_S) * dt_s
    air_load = AIR_LOAD_RATE * dt_s
    load_air = air_load / params.load_ratio
    product_rate = PRODUCT_MOISTURE_RATE * dt_s
    hyst = params.hysteresis_c
    has_heater = params.heating_c_per_s > 0
    rh_target = params.rh_target_pct / 100.0
    air, load, vapour = state.air_c, state.load_c, state.vapour_pa
    cooling = state.cooling if state.cooling.shape == (n,) else np.zeros(n, dtype=bool)
    heating = state.heating if state.heating.shape == (n,) else np.zeros(n, dtype=bool)
    for i in range(steps):
        sp = drivers.setpoint_c[i]
        cooling = (air > sp + hyst) | (cooling & (air >= sp - hyst))
        heating = has_heater & ((air < sp - 2 * hyst) | (heating & (air <= sp - hyst)))
        es_air = saturation_vapour_pa(air)
        d_vap = (amb_vapour[i] - vapour) * moisture_exchange[i] + product_rate * (rh_target * es_air - vapour)
        d_vap -= cooling * drying_rate[i] * np.maximum(vapour - COIL_SATURATION_RATIO * es_air, 0.0)
        d_vap += melt_rate[i] * np.maximum(es_air - vapour, 0.0)
        d_air = (drivers.ambient_c[i] - air) * heat_loss_rate[i] + air_load * (load - air)
        d_air += heating * heat_step[i] + defrost_step[i] - cooling * cool_step[i]
        load = load + load_air * (air - load)
        air = air + d_air
        vapour = np.minimum(vapour + d_vap, es_air)  # beyond saturation it condenses / frosts
        if i % record_every == record_every - 1 or i == steps - 1:
            j = i // record_every
            out_air[j] = air
            out_rh[j] = np.minimum(100.0 * vapour / saturation_vapour_pa(air), 100.0)
            out_cool[j] = cooling & on_power[i]
    state.air_c, state.load_c, state.vapour_pa, state.cooling, state.heating = air, load, vapour, cooling, heating
    return Trajectory(out_air, out_rh, out_cool)


def setpoints(profiles: list[str]) -> FloatArray:
    """The usual setpoint of each profile."""
    return np.array([PROFILES[p].setpoint_c for p in profiles], dtype=np.float64)
