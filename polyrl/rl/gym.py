"""The replay environment as a Gymnasium environment: bring your own RL algorithm.

:class:`ReplayVectorEnv` is a ``gymnasium.vector.VectorEnv`` over one
:class:`~polyrl.rl.env.ReplayEnv` (``num_envs`` episodes in lockstep) and :class:`ReplayGymEnv`
a ``gymnasium.Env`` playing one episode at a time. Both step the same code ``polyrl train``
trains on: the cached observations, the PaperBroker's fills and fees at the cached books, its
reward (``[broker] reward``) and settlement, so any Gymnasium-speaking algorithm
(stable-baselines3, CleanRL, your own) trains on polyrl's data with polyrl's execution.
:func:`make_env` and :func:`make_vector_env` build them from a recording root, its days and a
Config (day caches built where missing).

- Observations: ``Box(-inf, inf, (feature_set.dim,), float32)``, the feature set's columns in
  its order (market features, then has_position, position_side, position_pnl).
- Actions: ``Discrete(3)``: 0 HOLD, 1 BUY (Up), 2 SELL (buys Down).
- An episode is one asset's 15-minute window; it *terminates* at settlement (never
  truncated). The step that ends it carries the episode's settled PnL in its reward and its
  accounts in the info: ``pnl`` (USDC; NaN for a window with no outcome, whose position is
  dropped unpaid), ``fees``, ``fills``, ``orders``, ``episode_id`` (the episode's index in the
  store) and ``outcome``. Every step's info has ``t_ns`` (the decision tick) and
  ``episode_id``; the key ``episode`` is left to episode-statistics wrappers (gymnasium's
  RecordEpisodeStatistics, stable-baselines3's Monitor), which write it.
- The final observation of an episode is the market as of its last decision tick (no later
  tick exists in the window) with the settled, flat position (position features 0).
- Seeding: ``reset(seed=s)`` restarts the episode order from seed ``s`` (the same seeded
  shuffle ``ReplayEnv`` uses) with fresh broker state, so the same seed and actions give the
  same trajectory bit for bit. ``reset()`` without a seed moves on to the next episode of
  the current order; before any seed is given the constructor's ``seed`` is used.
- :class:`ReplayVectorEnv` autoresets in gymnasium 1.x's *same-step* mode
  (``metadata["autoreset_mode"]``): a sub-environment whose episode ended returns the next
  episode's first observation at once, with the ended episode's final observation in
  ``info["final_obs"]`` and its info in ``info["final_info"]`` (each with its ``_``-mask).

gymnasium is the ``gym`` extra (``pip install 'polyrl[gym]'``): this module imports without
it and building an environment then raises a one-line ImportError naming the extra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrl.broker import BrokerConfig
from polyrl.config import Config
from polyrl.errors import FeatureSetMismatch
from polyrl.features.sets import FeatureSet, feature_set
from polyrl.replay import load_days
from polyrl.rl.env import ReplayEnv
from polyrl.rl.episodes import EpisodeStore

GYM_MISSING = "polyrl.rl.gym needs gymnasium, the `gym` extra: pip install 'polyrl[gym]'"

N_ACTIONS = 3
"""0 HOLD, 1 BUY (Up), 2 SELL (buys Down)."""

if TYPE_CHECKING:
    from gymnasium import Env as _EnvBase
    from gymnasium.vector import AutoresetMode
    from gymnasium.vector import VectorEnv as _VecBase

    _SAME_STEP: Any = AutoresetMode.SAME_STEP
else:
    try:
        from gymnasium import Env as _EnvBase
        from gymnasium.vector import AutoresetMode
        from gymnasium.vector import VectorEnv as _VecBase

        _SAME_STEP = AutoresetMode.SAME_STEP
    except ImportError:  # the `gym` extra is absent: the classes exist, building one says so

        class _EnvBase:
            pass

        _VecBase = _EnvBase
        _SAME_STEP = "SameStep"


def _gym() -> Any:
    try:
        import gymnasium
    except ImportError:
        raise ImportError(GYM_MISSING) from None
    return gymnasium


def _spaces(fset: FeatureSet) -> tuple[Any, Any]:
    """(observation space, action space) of one episode."""
    spaces = _gym().spaces
    return spaces.Box(-np.inf, np.inf, (fset.dim,), np.float32), spaces.Discrete(N_ACTIONS)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def _final_info(row: dict[str, Any]) -> dict[str, Any]:
    """What the step that ends an episode reports about it (from its episodes row)."""
    pnl = row["pnl"]
    return {
        "pnl": float("nan") if pnl is None else float(pnl),
        "fees": float(row["fees"]),
        "fills": int(row["fills"]),
        "orders": int(row["orders"]),
        "episode_id": int(row["episode"]),
        "outcome": str(row["outcome"]),
    }


class _Replay:
    """A ReplayEnv made anew for each seed, and the checks on what is passed to it."""

    def __init__(self, store: EpisodeStore, n: int, fset: FeatureSet, broker: BrokerConfig,
                 seed: int, kw: dict[str, Any]) -> None:  # fmt: skip
        if not isinstance(store, EpisodeStore):
            raise TypeError(f"store must be an EpisodeStore, got {type(store).__name__}")
        if not isinstance(fset, FeatureSet):
            raise TypeError(f"fset must be a FeatureSet, got {type(fset).__name__}")
        for c in store.caches:
            built = (c.meta.get("feature_set"), c.meta.get("feature_set_version"))
            if built != (fset.name, fset.version):
                raise FeatureSetMismatch(
                    f"the day cache of {c.date} ({c.path}) holds feature set {built[0]!r} "
                    f"version {built[1]!r}, not {fset.name!r} version {fset.version!r}: "
                    "build the store with the env's feature set"
                )
        self.store, self.n, self.fset, self.broker, self.kw = store, n, fset, broker, kw
        self.seed = _check_seed(seed)
        self.env: ReplayEnv | None = None
        self._pix = np.array(fset.position_index)

    def start(self, seed: int | None) -> ReplayEnv:
        """A fresh ReplayEnv for ``seed`` (given, or the last one) when asked or never made."""
        if seed is not None or self.env is None:
            if seed is not None:
                self.seed = _check_seed(seed)
            self.env = ReplayEnv(self.store, n_envs=self.n, fset=self.fset, broker=self.broker,
                                 seed=self.seed, **self.kw)  # fmt: skip
        return self.env

    def actions(self, actions: Any) -> np.ndarray:
        """``actions`` as int64 [n], or a ValueError naming what is wrong."""
        a = np.asarray(actions)
        if a.shape != (self.n,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.n} integer(s) in 0..{N_ACTIONS - 1}, got {actions!r}"
            )
        if ((a < 0) | (a >= N_ACTIONS)).any():
            raise ValueError(f"actions must be in 0..{N_ACTIONS - 1} (HOLD, BUY, SELL), got {a}")
        return a.astype(np.int64)

    def final_obs(self, last: np.ndarray) -> np.ndarray:
        """The final observation of an episode whose last decision saw ``last`` [F]."""
        out = last.copy()
        out[self._pix] = 0.0
        return out


class _Holds:
    """What both environments expose of the :class:`_Replay` they drive."""

    _r: _Replay

    @property
    def replay(self) -> ReplayEnv | None:
        """The ReplayEnv stepped (None before the first reset)."""
        return self._r.env

    @property
    def store(self) -> EpisodeStore:
        """The episodes played."""
        return self._r.store


class ReplayVectorEnv(_Holds, _VecBase):
    """``num_envs`` episodes of ``store`` in lockstep (see the module doc)."""

    metadata: dict[str, Any] = {"autoreset_mode": _SAME_STEP, "render_modes": []}

    def __init__(
        self,
        store: EpisodeStore,
        *,
        num_envs: int,
        fset: FeatureSet,
        broker: BrokerConfig,
        seed: int = 0,
        latency_ns: int = 0,
        tick_ns: int = 500_000_000,
        min_notional: float = 1.0,
    ) -> None:
        gym = _gym()
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        kw = {"latency_ns": latency_ns, "tick_ns": tick_ns, "min_notional": min_notional}
        self._r = _Replay(store, num_envs, fset, broker, seed, kw)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(fset)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._obs: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every sub-environment on a new episode (``seed``: restart the order)."""
        if seed is not None:
            _check_seed(seed)
        super().reset(seed=seed)
        self._obs = self._r.start(seed).reset()
        return self._obs.copy(), {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._obs is None or self._r.env is None:
            raise RuntimeError("call reset() before step()")
        acts = self._r.actions(actions)
        n = self.num_envs
        last = self._obs
        obs, rewards, done, info = self._r.env.step(acts)
        out: dict[str, Any] = {
            "t_ns": info["t_ns"].copy(), "_t_ns": np.ones(n, dtype=bool),
            "episode_id": info["episode"].copy(), "_episode_id": np.ones(n, dtype=bool),
        }  # fmt: skip
        if done.any():
            final_obs = np.full(n, None, dtype=object)
            final: dict[str, Any] = {}
            for row in info["episodes"]:
                i = int(row["env"])
                final_obs[i] = self._r.final_obs(last[i])
                for k, v in _final_info(row).items():
                    if k not in final:
                        final[k] = (np.full(n, None, dtype=object) if isinstance(v, str)
                                    else np.zeros(n, dtype=type(v)))  # fmt: skip
                        final["_" + k] = np.zeros(n, dtype=bool)
                    final[k][i] = v
                    final["_" + k][i] = True
            out.update({"final_obs": final_obs, "_final_obs": done.copy(),
                        "final_info": final, "_final_info": done.copy()})  # fmt: skip
        self._obs = obs
        return (obs.copy(), rewards.astype(np.float64), done.copy(),
                np.zeros(n, dtype=bool), out)  # fmt: skip


class ReplayGymEnv(_Holds, _EnvBase):
    """One episode of ``store`` at a time (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        store: EpisodeStore,
        *,
        fset: FeatureSet,
        broker: BrokerConfig,
        seed: int = 0,
        latency_ns: int = 0,
        tick_ns: int = 500_000_000,
        min_notional: float = 1.0,
    ) -> None:
        _gym()
        kw = {"latency_ns": latency_ns, "tick_ns": tick_ns, "min_notional": min_notional}
        self._r = _Replay(store, 1, fset, broker, seed, kw)
        self.observation_space, self.action_space = _spaces(fset)
        self._obs: np.ndarray | None = None
        self._fresh = False
        """The episode in play has just begun (the ReplayEnv starts the next one itself)."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode (``seed``: restart the order); returns (obs, info)."""
        if seed is not None:
            _check_seed(seed)
        super().reset(seed=seed)
        if seed is None and self._fresh and self._r.env is not None:
            obs = self._r.env.observe()
        else:
            obs = self._r.start(seed).reset()
        self._fresh = False
        self._obs = obs
        env = self._r.env
        assert env is not None
        return obs[0].copy(), {"episode_id": int(env.ep[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None or self._r.env is None:
            raise RuntimeError("call reset() before step()")
        if self._fresh:
            raise RuntimeError("the episode has ended: call reset() before step()")
        acts = self._r.actions(np.reshape(np.asarray(action), (1,)))
        obs, rewards, done, info = self._r.env.step(acts)
        out: dict[str, Any] = {"t_ns": int(info["t_ns"][0]), "episode_id": int(info["episode"][0])}
        terminated = bool(done[0])
        if terminated:
            out.update(_final_info(info["episodes"][0]))
            obs_out = self._r.final_obs(self._obs[0])
            self._fresh = True
        else:
            obs_out = obs[0].copy()
        self._obs = obs
        return obs_out, float(rewards[0]), terminated, False, out


def _build(
    root: Path | str,
    days: str | Sequence[str],
    config: Config,
    feature_set_name: str | None,
    exclude: bool,
) -> tuple[EpisodeStore, FeatureSet, Config]:
    _gym()  # before any day cache is built
    if not isinstance(config, Config):
        raise TypeError(
            f"config must be a polyrl Config (from polyrl.sections import Config), "
            f"got {type(config).__name__}"
        )
    if feature_set_name is not None:
        feature_set(feature_set_name)  # an unknown name: a ConfigError listing the known ones
        config = dataclasses.replace(
            config, features=dataclasses.replace(config.features, feature_set=feature_set_name)
        )
    fset = feature_set(config.features.feature_set)
    caches = load_days(Path(root), days, config)
    if exclude:
        tc = config.train
        store = EpisodeStore.build(caches, exclude_gap=tc.exclude_gap,
                                   exclude_missing=tc.exclude_missing)  # fmt: skip
    else:
        store = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    return store, fset, config


def _kw(config: Config) -> dict[str, Any]:
    e = config.engine
    return {"broker": config.broker, "latency_ns": e.latency_ns, "tick_ns": e.tick_ns,
            "min_notional": e.min_notional}  # fmt: skip


def make_env(
    root: Path | str,
    days: str | Sequence[str],
    config: Config,
    *,
    feature_set: str | None = None,
    seed: int = 0,
    training: bool = True,
) -> ReplayGymEnv:
    """A :class:`ReplayGymEnv` over the recording at ``root``, days ``days`` (date globs, as
    ``--replay`` takes them), with ``config``'s broker, engine timing and feature set
    (``feature_set`` overrides it). ``training``: leave out the windows ``[train]``
    exclude_gap / exclude_missing leave out of training; False plays every window with a
    tradable tick, as validation and test do."""
    store, fset, cfg = _build(root, days, config, feature_set, training)
    return ReplayGymEnv(store, fset=fset, seed=seed, **_kw(cfg))


def make_vector_env(
    root: Path | str,
    days: str | Sequence[str],
    config: Config,
    *,
    num_envs: int,
    feature_set: str | None = None,
    seed: int = 0,
    training: bool = True,
) -> ReplayVectorEnv:
    """A :class:`ReplayVectorEnv` of ``num_envs`` (arguments as :func:`make_env`)."""
    store, fset, cfg = _build(root, days, config, feature_set, training)
    return ReplayVectorEnv(store, num_envs=num_envs, fset=fset, seed=seed, **_kw(cfg))
