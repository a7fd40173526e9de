"""`tokens2chips throughput` and `tokens2chips size`: the serving model (hardware/serving.py) on the
embedded spec sheet, model catalog and calibration measurements; JSON out, one error line and exit 2
on bad input."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

from pipelines.settings import Paths

PRECISIONS = ("bf16", "fp8", "fp4")


class InputError(ValueError):
    pass


def number(text: str) -> float:
    """argparse type: integer, decimal or exponent notation (6.08e11); finite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _check(name: str, value, low: float, high: float | None = None, low_open: bool = False) -> None:
    if value is None:
        return
    if (value <= low if low_open else value < low) or (high is not None and value > high):
        span = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise InputError(f"--{name} {value:g} is out of range (must be {span})")


CACHE_DIR = "hardware-context"


def _cache_key(paths) -> str:
    """Hash of everything the context depends on: the four data files, the assumptions file and the
    serving model's code (so an edit to any of them refits)."""
    import hashlib

    from pipelines.settings import PROJECT_ROOT

    digest = hashlib.sha256()
    files = [paths.data_dir / name for name in ("accelerator_specs.csv", "model_catalog.csv", "model_slug_map.csv",
                                                "throughput_measurements.csv")]
    files += [paths.assumptions, *sorted((PROJECT_ROOT / "hardware").glob("*.py"))]
    for f in files:
        digest.update(str(f).encode())
        digest.update(f.read_bytes() if f.is_file() else b"<missing>")
    published = _published(paths)
    if published is not None:  # the calibration the marts used: its file's identity
        stat = published.stat()
        digest.update(f"{published}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()[:32]


def _published(paths):
    from warehouse.io import published_copy

    path = published_copy(paths.warehouse)
    return path if path.is_file() else None


def _published_efficiency(paths):
    """marts.serving_efficiency of the published warehouse (the calibration the fleet marts used), or None
    when there is no published copy or it predates the table."""
    path = _published(paths)
    if path is None:
        return None
    import duckdb

    from hardware.serving import serving_from_table

    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            frame = con.execute("select * from marts.serving_efficiency").pl()
        finally:
            con.close()
        return serving_from_table(frame)[0]
    except (duckdb.Error, KeyError):
        return None


def _context(args):
    """Chips, models, slug map, calibrated efficiencies, limits and the per-user speed target, from the data dir
    and assumptions; fitted once per content of those files and kept in var/cache (pickle) so later calls
    answer without refitting."""
    import pickle

    paths = Paths.from_env(data_dir=args.data_dir, assumptions=args.assumptions)
    try:
        key = _cache_key(paths)
    except OSError as exc:
        raise InputError(str(exc)) from None
    cache = paths.warehouse.parent / "cache" / CACHE_DIR / f"{key}.pkl"
    if cache.is_file():
        try:
            return pickle.loads(cache.read_bytes())
        except Exception:  # a damaged or incompatible cache file is rebuilt
            pass
    context = _build_context(paths)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(context))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only checkout still answers, only slower
    return context


def _build_context(paths):
    """The files read, then hardware.context.serving_context (the library builds the context)."""
    import polars as pl

    from configuration.assumptions import AssumptionsError, load_configuration
    from hardware.context import serving_context

    try:
        configuration = load_configuration(paths.assumptions)
        config = configuration.model
        specs = pl.read_csv(paths.data_dir / "accelerator_specs.csv", infer_schema_length=None)
        catalog = pl.read_csv(paths.data_dir / "model_catalog.csv", infer_schema_length=None)
        slugs = pl.read_csv(paths.data_dir / "model_slug_map.csv")
        measured = pl.read_csv(paths.data_dir / "throughput_measurements.csv", infer_schema_length=None)
    except (AssumptionsError, OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    # the published calibration (what the fleet marts used); without a warehouse, the same fit on the files
    effs = _published_efficiency(paths)
    published = None if effs is None else (
        effs, f"published calibration ({_published(paths)}: marts.serving_efficiency)")
    ctx = serving_context(config, specs, catalog, slugs, measured, published)
    return (ctx.chips, ctx.models, ctx.slug_pairs, ctx.efficiency, ctx.limits, ctx.user_speed_tokens_per_s,
            ctx.efficiency_source)


def _resolve(args, chips, models, slugs):
    from hardware.specs import resolve_with_reason

    chip, chip_how = resolve_with_reason(args.chip, chips, "chip")
    model, model_how = resolve_with_reason(args.model, models, "model", slugs)
    return chips[chip], models[model], {"chip": {"given": args.chip, "resolved": chip, "how": chip_how},
                                        "model": {"given": args.model, "resolved": model, "how": model_how}}


def _precision_note(chip, precision: str) -> str | None:
    native = {"bf16": chip.bf16_tflops, "fp8": chip.fp8_tflops, "fp4": chip.fp4_tflops}
    if native[precision]:
        return None
    wider = ("fp4", "fp8", "bf16")
    runs = next((p for p in wider[wider.index(precision):] if native[p]), "bf16")
    return (f"{chip.name} has no {precision} peak in the spec sheet: compute runs at its {runs} rate "
            f"(weights and KV are still sized at {precision})")


def cmd_throughput(args: argparse.Namespace) -> int:
    from hardware.serving import group_of, serve

    try:
        _check("input-tokens", args.input_tokens, 1)
        _check("output-tokens", args.output_tokens, 1)
        _check("batch", args.batch, 1)
        _check("user-speed", args.user_speed, 0, low_open=True)
        _check("mfu", args.mfu, 0, 1, low_open=True)
        _check("mbu", args.mbu, 0, 1, low_open=True)
        chips, models, slugs, effs, limits, speed_target, source = _context(args)
        chip, model, resolved = _resolve(args, chips, models, slugs)
        eff = effs[group_of(chip)]
        changes = {k: v for k, v in (("mfu", args.mfu), ("mbu", args.mbu)) if v is not None}
        if changes:
            eff = dataclasses.replace(eff, **changes)
        speed = args.user_speed if args.user_speed is not None else speed_target
        r = serve(chip, model, args.precision, args.input_tokens, args.output_tokens, eff, limits,
                  user_speed=None if args.batch else speed, batch=args.batch)
    except (InputError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    notes = [n for n in (_precision_note(chip, args.precision),) if n]
    if not args.batch and not r["meets_speed"]:
        notes.append(f"no batch reaches {speed:g} tokens/s per user on this chip and model; batch 1 shown")
    out = {
        "chip": chip.name, "chip_class": chip.chip_class, "model": model.name, "resolved": resolved,
        "precision": args.precision, "input_tokens": args.input_tokens, "output_tokens": args.output_tokens,
        "user_speed_target": None if args.batch else speed,
        "batch": r["batch"], "batch_chosen_by": "--batch" if args.batch else "memory, max_batch_per_chip and the "
        "per-user speed target",
        "efficiency": {"mfu": eff.mfu, "mbu": eff.mbu, "layer_latency_us": eff.layer_us, "hop_latency_us": eff.hop_us,
                       "moe_prefill_efficiency": eff.moe, "scaleout_layer_latency_us": eff.scaleout_us,
                       "ep_layer_latency_us": eff.ep_us,
                       "from": source + (" (overridden)" if changes else "")},
        "min_chips_per_replica": r["min_chips"], "replica_chips": r["n"],
        "layout": {"tp": "layers split over the replica's chips (tensor/expert parallel)",
                   "pp": "pipeline: stages of chips in turn"}[r["layout"]],
        "per_user_latency_ms": r["per_user_latency_ms"],
        "prefill": {"tokens_per_s_per_replica": r["prefill_per_chip"] * r["n"],
                    "tokens_per_s_per_chip": r["prefill_per_chip"], "bound": r["prefill_bound"]},
        "decode": {"tokens_per_s_per_replica": r["decode_per_chip"] * r["n"],
                   "tokens_per_s_per_chip": r["decode_per_chip"], "tokens_per_s_per_user": r["decode_per_user"],
                   "bound": r["decode_bound"]},
        "notes": notes,
    }
    print(json.dumps(out, indent=2, allow_nan=False))
    return 0


def cmd_size(args: argparse.Namespace) -> int:
    from hardware.serving import group_of, size

    try:
        for name in ("input-tokens-per-day", "output-tokens-per-day"):
            _check(name, getattr(args, name.replace("-", "_")), 0)
        _check("cached-share", args.cached_share, 0, 1)
        _check("prompt-tokens", args.prompt_tokens, 1)
        _check("output-tokens", args.output_tokens, 1)
        _check("user-speed", args.user_speed, 0, low_open=True)
        _check("peak-to-average", args.peak_to_average, 1)
        _check("utilisation", args.utilisation, 0, 1, low_open=True)
        _check("redundancy", args.redundancy, 0)
        chips, models, slugs, effs, limits, speed_target, source = _context(args)
        chip, model, resolved = _resolve(args, chips, models, slugs)
        pchip = None
        if args.prefill_chip:
            from hardware.specs import resolve_with_reason

            name, how = resolve_with_reason(args.prefill_chip, chips, "chip")
            pchip = chips[name]
            resolved["prefill_chip"] = {"given": args.prefill_chip, "resolved": name, "how": how}
        speed = args.user_speed if args.user_speed is not None else speed_target
        used = {"cached_share": args.cached_share, "prompt_tokens": args.prompt_tokens,
                "output_tokens": args.output_tokens, "user_speed_tokens_per_s": speed,
                "peak_to_average": args.peak_to_average if args.peak_to_average is not None else 1.0,
                "utilisation": args.utilisation if args.utilisation is not None else 1.0,
                "redundancy": args.redundancy if args.redundancy is not None else 0.0,
                "precision": args.precision}
        result = size(chip, model, args.precision, args.input_tokens_per_day, args.output_tokens_per_day,
                      args.cached_share, args.prompt_tokens, args.output_tokens, effs[group_of(chip)], limits, speed,
                      pchip, effs[group_of(pchip)] if pchip else None, used["peak_to_average"],
                      used["utilisation"], used["redundancy"])
    except (InputError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    notes = [n for n in (_precision_note(chip, args.precision),) if n]
    if result["chips"] > 1e9:
        notes.append(f"{result['chips']:.3g} chips: more than a billion accelerators (tens of times the world's "
                     "installed base); check the load's unit (tokens per day, not per year or per month)")
    if not result["decode"]["meets_user_speed"] and args.output_tokens_per_day > 0:
        notes.append(f"{chip.name} cannot serve {model.name} at {speed:g} tokens/s per user; sized at batch 1")
    out = {"model": model.name, "resolved": resolved, **result, "assumptions": used,
           "decode_context_tokens": args.prompt_tokens + args.output_tokens / 2,
           "efficiency_source": source,
           "notes": notes}
    print(json.dumps(out, indent=2, allow_nan=False))
    return 0


def add_parsers(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--chip", required=True, help="a chip of accelerator_specs.csv, e.g. H100")
    common.add_argument("--model", required=True, help="a catalog model or a provider slug, e.g. "
                        "deepseek/deepseek-v3.2")
    common.add_argument("--precision", choices=PRECISIONS, default="fp8", help="weights, KV and compute format")
    common.add_argument("--data-dir", help="directory with accelerator_specs.csv, model_catalog.csv and "
                        "throughput_measurements.csv (env T2C_DATA_DIR, default data/)")
    common.add_argument("--assumptions", help="assumptions YAML (env T2C_ASSUMPTIONS, default config/assumptions.yaml)")
    common.add_argument("--user-speed", type=number, metavar="TOKENS_PER_S",
                        help="per-user decode speed target (default: hardware.user_speed_tokens_per_s)")

    tp = sub.add_parser("throughput", parents=[common],
                        help="serving model: prefill/decode tokens/s of a model on a chip (JSON)")
    tp.add_argument("--input-tokens", type=number, default=1024, help="prompt tokens per request")
    tp.add_argument("--output-tokens", type=number, default=256, help="output tokens per request")
    tp.add_argument("--batch", type=number, help="decode batch per replica (default: the largest that fits "
                    "memory and keeps the per-user speed target)")
    tp.add_argument("--mfu", type=number, help="override the calibrated compute efficiency (0-1]")
    tp.add_argument("--mbu", type=number, help="override the calibrated bandwidth efficiency (0-1]")
    tp.set_defaults(func=cmd_throughput)

    sz = sub.add_parser("size", parents=[common], help="chips to serve a daily token load (JSON)")
    sz.add_argument("--input-tokens-per-day", type=number, required=True, help="prompt tokens per day")
    sz.add_argument("--output-tokens-per-day", type=number, required=True, help="output tokens per day")
    sz.add_argument("--cached-share", type=number, default=0.0, help="share of input tokens served from the "
                    "prefix cache (no prefill compute)")
    sz.add_argument("--prompt-tokens", type=number, default=3000, help="mean prompt tokens per request")
    sz.add_argument("--output-tokens", type=number, default=500, help="mean output tokens per request "
                    "(decode context = prompt + half the output)")
    sz.add_argument("--prefill-chip", help="a different chip for prefill (disaggregated serving)")
    sz.add_argument("--peak-to-average", type=number, help="size for the peak (default 1: the stated average load)")
    sz.add_argument("--utilisation", type=number, help="useful share of capacity (default 1)")
    sz.add_argument("--redundancy", type=number, help="extra share of chips for failures (default 0)")
    sz.set_defaults(func=cmd_size)
