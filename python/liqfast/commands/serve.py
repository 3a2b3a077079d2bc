"""`liqfast serve`: the HTTP API, the web page and the stream (``--demo``: offline, a
simulated market behind a fake exchange on loopback)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve liquidation heatmaps and maps over HTTP (--demo: offline simulated market)")
    p.add_argument("--demo", action="store_true",
                   help="offline demo: simulate a market, serve it as a fake exchange on loopback and ingest it like live data")
    p.add_argument("--offline", action="store_true", help="serve what the store holds and ingest nothing")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--venues", default=None,
                   help="comma-separated venue ids (default: binance-usdm,bybit-linear,okx-linear)")
    p.add_argument("--symbols", default="BTC", help="comma-separated coins (default BTC)")
    p.add_argument("--db", default=None, help="SQLite file for history and checkpoints (default: "
                   "$LIQFAST_DATA_DIR/serve.sqlite; --demo: a fresh temporary file); ':memory:' keeps nothing")
    p.add_argument("--bar", default="5m", help="bar interval, the model's step (default 5m)")
    p.add_argument("--speed", type=float, default=60.0, help="--demo: simulated seconds per real second (default 60)")
    p.add_argument("--history", default="3d", help="--demo: history simulated at start (default 3d; 0 for none)")
    p.add_argument("--seed", type=int, default=7, help="--demo: simulator seed")
    p.add_argument("--profile", default=None, help="calibrated model profile (liqfast calibrate) for parameters and scale")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="S", help="model checkpoint period (default 60 s)")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second per client (0: no limit; default 50)")
    p.add_argument("--burst", type=float, default=200.0, help="request burst per client (default 200)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN", help="allow this origin (repeatable; default: CORS off)")
    p.add_argument("--admin-token-env", default=None, metavar="VAR",
                   help="enable the admin routes with the bearer token in environment variable VAR")
    p.add_argument("--max-bins", type=int, default=2000, help="largest price-bucket count a query may ask for")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from ..errors import InvalidInputError
    from ..exchanges.backfill import parse_interval
    from ..exchanges.clitools import venue_list
    from ..server import ServerConfig
    from ..server.config import DEMO_VENUES
    from ..tiers import user_data_dir

    venues = tuple(venue_list(args.venues)) if args.venues else tuple(DEMO_VENUES)
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    if not symbols:
        raise InvalidInputError("--symbols is empty")
    if args.db:
        db = args.db
    elif args.demo:
        db = str(Path(tempfile.mkdtemp(prefix="liqfast-demo-")) / "demo.sqlite")
    else:
        db = str(user_data_dir() / "serve.sqlite")
    token = None
    if args.admin_token_env:
        token = os.environ.get(args.admin_token_env)
        if not token or len(token) < 16:
            raise InvalidInputError(f"--admin-token-env {args.admin_token_env}: set it to a secret of at least 16 characters")
    params, scale = None, {}
    if args.profile:
        from ..calibrate import load_profile

        prof = load_profile(args.profile)
        params, scale = prof.params, dict(prof.scale)
        missing = [v for v in venues if v not in scale]
        if missing and prof.venue in scale:
            # Scale 1 (the server's default) would put these venues in the model's raw units,
            # tens of times the scaled venue's, and swamp the aggregate.
            for v in missing:
                scale[v] = scale[prof.venue]
            print(f"liqfast serve: warning: profile {args.profile} has no scale for {', '.join(missing)}; "
                  f"using its {prof.venue} scale {scale[prof.venue]:.4g}", file=sys.stderr)
    history = 0 if args.history in ("0", "none") else parse_interval(args.history)
    if args.speed <= 0:
        raise InvalidInputError("--speed must be > 0")
    return ServerConfig(
        host=args.host, port=args.port, venues=venues, symbols=symbols, db=db, feed="demo" if args.demo else "none" if args.offline else "live",
        bar_ms=parse_interval(args.bar), checkpoint_s=args.checkpoint_every, rate_per_s=args.rate, rate_burst=args.burst,
        cors_origins=tuple(args.cors), admin_token=token, max_bins=args.max_bins, params=params, scale=scale,
        demo_speed=args.speed, demo_history_ms=history, demo_seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from ..server import run_server

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    cfg = config_from_args(args)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"liqfast serve: warning: listening on {cfg.host}: reachable from other machines", file=sys.stderr)

    def hello(url: str) -> None:
        what = {"demo": "offline demo (simulated market)", "none": "stored history only (no ingestion)"}.get(
            cfg.feed, "live venues " + ", ".join(cfg.venues))
        print(f"liqfast serve: {what} on {url}  (API: {url}openapi.json; data: {cfg.db}) — Ctrl-C to stop", file=sys.stderr,
              flush=True)

    run_server(cfg, print_url=hello)
    return 0
