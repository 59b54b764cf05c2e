"""Point every proxied model configuration straight at its provider.

For each reference (all four places: model_config.models[], conversation
snapshots, workflow nodes, saved custom nodes) whose normalised URL is a proxy
URL and whose model name the plan resolves, set the URL, the key and, when the
proxy alias differs from the upstream id, the model name, in the spelling the
copy already uses. Nothing else changes. Unresolved names are left alone (the
runner refuses them unless --skip-unresolved).
"""

from __future__ import annotations

from typing import Any

from layra_migrate.engine.api import MigrationAPI
from layra_migrate.locations import (
    CONVERSATIONS,
    LOCATION_NAMES,
    LOCATIONS,
    MODEL_CONFIG,
    Reference,
    field_name,
    redis_keys_for,
)

id = "0001_litellm_to_direct"
description = "LiteLLM proxy -> direct provider: model URL, key and model id in all four places"


def _changes(ctx: MigrationAPI, ref: Reference) -> tuple[dict[str, Any], dict[str, Any]]:
    changes: dict[str, Any] = {}
    expect: dict[str, Any] = {}
    if not ctx.plan.proxy.matches(ref.model_url):
        return changes, expect
    target = ctx.plan.target(ref.model_name)
    if target is None or ctx.plan.holds_back(ref):
        return changes, expect
    cfg = ref.config

    def put(logical: str, value: Any, *, only_if_present: bool = False) -> None:
        # the one spelling rule (locations.field_name): the key the app reads
        key = field_name(cfg, logical)
        if only_if_present and key not in cfg:
            return  # never add a field the copy does not have
        path = ref.field_path(logical)
        changes[path] = value
        expect[path] = cfg[key] if key in cfg else ctx.MISSING

    put("model_url", target.base_url)
    put("api_key", ctx.keys.for_target(target), only_if_present=True)
    if target.model != ref.model_name:
        put("model_name", target.model)
    return changes, expect


async def up(ctx: MigrationAPI) -> None:
    for name in LOCATION_NAMES:
        loc = LOCATIONS[name]
        async for doc in ctx.stream(
            loc.collection, loc.candidate_filter, loc.projection(), task=f"{name}"
        ):
            changes: dict[str, Any] = {}
            expect: dict[str, Any] = {}
            labels: dict[str, dict[str, str]] = {}
            for ref in loc.references(doc):
                c, e = _changes(ctx, ref)
                changes.update(c)
                expect.update(e)
                labels.update({p: {"model": str(ref.model_name)} for p in c})
            if not changes:
                continue
            keys = redis_keys_for(name, doc) if name in (CONVERSATIONS, MODEL_CONFIG) else []
            await ctx.set_fields(
                loc.collection,
                doc["_id"],
                changes,
                expect,
                cache_keys=keys,
                label={"location": name},
                field_labels=labels,
            )
    await ctx.flush()
    if not ctx.dry_run:
        await _postcondition(ctx)


async def _any_proxy_url(ctx: MigrationAPI, name: str) -> bool:
    """Whether any reference in one place still has a proxy URL: the distinct URLs, from
    the same server-side expression the exact recount uses, at about half its cost."""
    loc = LOCATIONS[name]
    cursor = await ctx.db[loc.collection].aggregate(
        loc.url_pipeline() + [{"$group": {"_id": "$url"}}]
    )
    found = False
    async for row in cursor:
        found = found or ctx.plan.proxy.matches(row["_id"])
    return found


async def _postcondition(ctx: MigrationAPI) -> None:
    """No reference that the plan resolves may still point at the proxy (exact, server-side:
    the audit's recount, run only where a proxy URL is left at all)."""
    from layra_migrate.audit import url_name_counts
    from layra_migrate.errors import VerificationFailed

    left: dict[str, int] = {}
    task = "post-condition"
    ctx.progress.start(task, len(LOCATION_NAMES))
    for name in LOCATION_NAMES:
        if await _any_proxy_url(ctx, name):  # else nothing resolvable can be left there
            for row in await url_name_counts(ctx.db, name):
                key = row["_id"]
                if ctx.plan.proxy.matches(key.get("url")) and ctx.plan.target(key.get("name")):
                    left[name] = left.get(name, 0) + int(row["n"])
            # entries the plan holds back on purpose (a rename that would duplicate a name)
            left[name] = left.get(name, 0) - ctx.plan.held_back_count(LOCATIONS[name].collection)
            if left[name] <= 0:
                del left[name]
        ctx.progress.advance(task)
    ctx.progress.finish(task)
    skipped = ctx.skipped
    if left and not skipped:
        shown = ", ".join(f"{k}: {v}" for k, v in left.items())
        raise VerificationFailed(
            f"post-condition failed: resolvable references still point at the proxy ({shown})"
        )
    if left:
        ctx.logger.warning(
            "%d document(s) changed during the run were left alone; re-run "
            "`rewrite` to migrate them",
            skipped,
        )
