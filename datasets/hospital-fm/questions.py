#!/usr/bin/env python3
"""Writes questions/hospital-fm.jsonl: every question with its expectation computed from the
CSV files here (never from OPS), with the windows and graph directions `docs/assets.md`
documents: "last week" is the 7 days up to as_of, "yesterday" the previous UTC day, "this
week" Monday 00:00 to as_of, "last month" the previous calendar month, a history question
without a window covers 30 days; powers/feeds/backs_up mean the target depends on the source.
"""
import csv
import datetime as dt
import json
import os
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
AS_OF_TEXT = "2026-03-01T00:00:00Z"


def load(name):
    with open(os.path.join(HERE, f"{name}.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def ts(text):
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


ASSETS, LINKS, READINGS, ORDERS, DOCS = (load(n) for n in ("fm_asset", "fm_link", "fm_reading", "work_order", "sop_doc"))
DEPENDENT = {"powers", "feeds", "backs_up"}


def assets(org, **where):
    return [a for a in ASSETS if a["org_code"] == org and all(
        (a[k] in v if isinstance(v, (set, list, tuple)) else a[k] == v) for k, v in where.items())]


def codes(rows):
    return sorted(a["tag_no"] for a in rows)


def key_of(org, tag):
    return next(a["asset_key"] for a in ASSETS if a["org_code"] == org and a["tag_no"] == tag)


def tag_of(key):
    return next(a["tag_no"] for a in ASSETS if a["asset_key"] == key)


def window(name):
    if name == "last_week":
        return AS_OF - dt.timedelta(days=7), AS_OF
    if name == "yesterday":
        return AS_OF - dt.timedelta(days=1), AS_OF
    if name == "this_week":
        monday = (AS_OF - dt.timedelta(days=AS_OF.weekday())).replace(hour=0, minute=0, second=0)
        return monday, AS_OF
    if name == "last_month":
        return dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    unit, n = name[-1], int(name[:-1])
    return AS_OF - (dt.timedelta(hours=n) if unit == "h" else dt.timedelta(days=n)), AS_OF


def values(org, tag, quantity, win):
    frm, to = window(win)
    key = key_of(org, tag)
    return [float(r["amount"]) for r in READINGS if r["org_code"] == org and r["asset_key"] == key
            and r["quantity"] == quantity and frm <= ts(r["read_at"]) < to]


def agg(vals, how):
    return round({"avg": lambda v: sum(v) / len(v), "max": max, "min": min}[how](vals), 2)


def orders(org, win, **where):
    frm, to = window(win)
    out = []
    for o in ORDERS:
        if o["org_code"] != org or not (frm <= ts(o["opened_at"]) < to):
            continue
        asset = next(a for a in ASSETS if a["asset_key"] == o["asset_key"])
        ok = True
        for k, v in where.items():
            if k == "open":
                ok &= (o["closed_at"] == "") == v
            elif k.startswith("asset."):
                ok &= asset[k[6:]] in (v if isinstance(v, (set, list, tuple)) else {v})
            else:
                ok &= o[k] in (v if isinstance(v, (set, list, tuple)) else {v})
        if ok:
            out.append(o["wo_no"])
    return sorted(out)


def impact(org, tag):
    found, frontier = set(), {key_of(org, tag)}
    while frontier:
        nxt = {l["to_key"] for l in LINKS if l["org_code"] == org and l["from_key"] in frontier and l["link_kind"] in DEPENDENT}
        frontier = nxt - found
        found |= nxt
    return sorted(tag_of(k) for k in found)


def neighbours(org, tag):
    key = key_of(org, tag)
    out = set()
    for l in LINKS:
        if l["org_code"] == org and l["from_key"] == key:
            out.add(tag_of(l["to_key"]))
        if l["org_code"] == org and l["to_key"] == key:
            out.add(tag_of(l["from_key"]))
    return sorted(out)


def nearest_path(org, tag, category):
    """The shortest path (any direction) to the nearest asset of a category; ties go to the
    smallest tag, and the path must be the only shortest one to it."""
    adj = defaultdict(set)
    for l in LINKS:
        if l["org_code"] == org:
            adj[l["from_key"]].add(l["to_key"])
            adj[l["to_key"]].add(l["from_key"])
    start = key_of(org, tag)
    level, seen, paths = [start], {start}, {start: [[start]]}
    while level:
        nxt = {}
        for u in level:
            for v in adj[u]:
                if v not in seen:
                    nxt.setdefault(v, []).extend(p + [v] for p in paths[u])
        seen |= set(nxt)
        paths.update(nxt)
        hits = sorted((tag_of(v), v) for v in nxt if next(a for a in ASSETS if a["asset_key"] == v)["category"] == category)
        if hits:
            found = paths[hits[0][1]]
            assert len(found) == 1, found
            return [tag_of(k) for k in found[0]]
        level = list(nxt)
    raise AssertionError("no path")


def per_asset(org, quantity, win):
    """Each asset's readings of a quantity in a window, by tag."""
    frm, to = window(win)
    per = defaultdict(list)
    for r in READINGS:
        if r["org_code"] == org and r["quantity"] == quantity and frm <= ts(r["read_at"]) < to:
            per[tag_of(r["asset_key"])].append(float(r["amount"]))
    return per


def ranking(org, quantity, win, n):
    per = per_asset(org, quantity, win)
    ranked = sorted(per.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))[:n]
    return [t for t, _ in ranked], [round(sum(v) / len(v), 2) for _, v in ranked]


def passing(org, quantity, win, threshold):
    per = per_asset(org, quantity, win)
    return sorted(t for t, v in per.items() if sum(v) / len(v) > threshold)


Q = []


def q(tenant, lang, question, mode, expect, route="orch"):
    Q.append({"id": f"h{len(Q) + 1:02d}", "tenant": tenant, "lang": lang, "question": question,
              "as_of": AS_OF_TEXT, "route": route, "mode": mode, "expect": expect})


def exact(rows):
    return {"codes": codes(rows), "codes_exact": True}


S, B = "seoulmed", "busanmed"
# Configuration: attribute filters, values in either language, counts, lookups, attributes.
q(S, "en", "List the air handlers in the Main building", "config", exact(assets(S, category="ahu", building="Main")))
q(S, "ko", "본관에 있는 공조기 목록을 보여줘", "config", exact(assets(S, category="ahu", building="Main")))
q(S, "en", "Which assets are under repair?", "config", exact(assets(S, service_state="under_repair")))
q(B, "ko", "수리 중인 설비는?", "config", exact(assets(B, service_state="under_repair")))
q(S, "en", "How many chillers are there?", "config", {"count": len(assets(S, category="chiller"))})
q(B, "ko", "발전기는 몇 대야?", "config", {"count": len(assets(B, category="generator"))})
q(S, "en", "What is CH-02?", "config", {"codes": ["CH-02"], "contains": ["Chiller 2"]})
q(B, "ko", "AHU-01이 뭐야?", "config", {"codes": ["AHU-01"], "contains": ["Operating Theatre Air Handler"]})
q(S, "ko", "CT-01 정보 알려줘", "config", {"codes": ["CT-01"], "contains": ["CT Scanner"]})
q(S, "en", "Who is the maker of GEN-02?", "config", {"contains": ["Caterpillar"]})
q(S, "ko", "MRI-01 제조사는?", "config", {"contains": ["Siemens"]})
q(S, "en", "Assets rated over 400 kW", "config", exact([a for a in assets(S) if float(a["rated_kw"]) > 400]))
q(S, "ko", "정격 출력 1000 이상인 설비", "config", exact([a for a in assets(S) if float(a["rated_kw"]) >= 1000]))
q(S, "en", "Assets installed before 2010", "config", exact([a for a in assets(S) if a["installed_on"] < "2010-01-01"]))
q(B, "ko", "2019년 이후 설치된 설비", "config", exact([a for a in assets(B) if a["installed_on"] >= "2019-01-01"]))
q(S, "en", "Life-safety assets in the East building", "config", exact(assets(S, criticality="life_safety", building="East")))
q(B, "en", "List the standby assets", "config", exact(assets(B, service_state="standby")))
q(B, "ko", "대기 상태 설비 목록", "config", exact(assets(B, service_state="standby")))
q(S, "en", "How many Daikin assets are there?", "config", {"count": len(assets(S, maker="Daikin"))})
q(S, "ko", "서관 설비 목록", "config", exact(assets(S, building="West")))
q(S, "en", "What is the rated power of BLR-01?", "config", {"codes": ["BLR-01"], "contains": ["600"]})
RANK = ["life_safety", "high", "medium", "low"]
q(S, "ko", "동관 설비 중 중요도가 high 이상인 것", "config", exact([a for a in assets(S, building="East") if RANK.index(a["criticality"]) <= 1]))
q(S, "en", "Assets with criticality high or above in the East building", "config", exact([a for a in assets(S, building="East") if RANK.index(a["criticality"]) <= 1]))
q(B, "en", "Which pumps are in service?", "config", exact(assets(B, category="pump", service_state="in_service")))
q(S, "en", "List the elevators", "config", exact(assets(S, category="elevator")))
q(S, "en", "How many air handlers are there?", "config", {"count": len(assets(S, category="ahu"))})
q(B, "ko", "공조기는 몇 대야?", "config", {"count": len(assets(B, category="ahu"))})
# Metrics: aggregations, several at once, superlatives, rankings, thresholds, filters, trends.
q(S, "en", "Average supply temperature of AHU-01 last week", "metric", {"numbers": [agg(values(S, "AHU-01", "supply_temp", "last_week"), "avg")]})
q(S, "ko", "AHU-02 공급 온도 평균 (최근 24시간)", "metric", {"numbers": [agg(values(S, "AHU-02", "supply_temp", "24h"), "avg")]})
q(B, "en", "Maximum power draw of CH-01 yesterday", "metric", {"numbers": [agg(values(B, "CH-01", "power_draw", "yesterday"), "max")]})
q(B, "ko", "어제 CH-02 전력 최대값", "metric", {"numbers": [agg(values(B, "CH-02", "power_draw", "yesterday"), "max")]})
v = values(S, "GEN-01", "power_draw", "last_week")
q(S, "en", "Average and peak power draw of GEN-01 last week", "metric", {"numbers": [agg(v, "avg"), agg(v, "max")]})
v = values(S, "UPS-01", "power_draw", "last_week")
q(S, "ko", "지난주 UPS-01 전력 평균과 최대", "metric", {"numbers": [agg(v, "avg"), agg(v, "max")]})
q(S, "en", "Lowest supply temperature of CH-01 yesterday", "metric", {"numbers": [agg(values(S, "CH-01", "supply_temp", "yesterday"), "min")]})
q(B, "ko", "어제 AHU-02 공급 온도 최저", "metric", {"numbers": [agg(values(B, "AHU-02", "supply_temp", "yesterday"), "min")]})
top, nums = ranking(S, "power_draw", "last_week", 3)
q(S, "en", "Top 3 assets by power draw last week", "metric", {"ranked_codes": top, "numbers": nums})
top, nums = ranking(B, "power_draw", "last_week", 3)
q(B, "ko", "지난주 전력 상위 3개 설비", "metric", {"ranked_codes": top, "numbers": nums})
q(S, "en", "Which assets had average vibration above 4 last week?", "metric", {"codes": passing(S, "vibration", "last_week", 4.0), "codes_exact": True})
q(B, "ko", "지난주 진동 평균 4 초과인 설비", "metric", {"codes": passing(B, "vibration", "last_week", 4.0), "codes_exact": True})
q(S, "en", "Average vibration of PMP-01 in the last 3 days", "metric", {"numbers": [agg(values(S, "PMP-01", "vibration", "3d"), "avg")]})
q(S, "ko", "지난달 CH-02 진동 평균", "metric", {"numbers": [agg(values(S, "CH-02", "vibration", "last_month"), "avg")]})
q(S, "en", "Average power draw of the chillers last week", "metric", {"numbers": [agg(values(S, t, "power_draw", "last_week"), "avg") for t in ("CH-01", "CH-02")]})
q(S, "ko", "지난주 공조기들의 공급 온도 평균", "metric", {"numbers": [agg(values(S, a["tag_no"], "supply_temp", "last_week"), "avg") for a in assets(S, category="ahu")]})
def had_orders(org, win, **where):
    keys = {o["asset_key"] for o in ORDERS if o["wo_no"] in orders(org, win, **where)}
    return sorted(tag_of(k) for k in keys)


# Two steps: the metric of the assets whose work orders match (assets without readings give none).
tags = [t for t in had_orders(S, "14d", wo_kind="breakdown") if values(S, t, "power_draw", "last_week")]
q(S, "en", "Average power draw last week of the assets that had breakdowns in the last 14 days", "metric",
  {"codes": tags, "codes_exact": True, "numbers": [agg(values(S, t, "power_draw", "last_week"), "avg") for t in tags]})
tags = [t for t in had_orders(S, "14d", wo_kind="preventive") if values(S, t, "power_draw", "last_week")]
q(S, "ko", "최근 14일 예방정비가 있었던 설비의 전력 평균 (지난주)", "metric",
  {"codes": tags, "codes_exact": True, "numbers": [agg(values(S, t, "power_draw", "last_week"), "avg") for t in tags]})
q(S, "en", "Power draw trend of BLR-01 over the last 24 hours", "metric", {"series_points": len(values(S, "BLR-01", "power_draw", "24h"))})
q(S, "ko", "GEN-01 진동 추이 최근 24시간", "metric", {"series_points": len(values(S, "GEN-01", "vibration", "24h"))})
# History: windows, types named by value, ordered priorities, open orders, entity filters.
q(S, "en", "Work orders on CT-01 in the last 30 days", "history", {"event_ids": orders(S, "30d", **{"asset.tag_no": "CT-01"})})
q(S, "ko", "지난 14일간 AHU-03 작업지시", "history", {"event_ids": orders(S, "14d", **{"asset.tag_no": "AHU-03"})})
q(S, "en", "Breakdowns in the last 14 days", "history", {"event_ids": orders(S, "14d", wo_kind="breakdown")})
q(B, "ko", "최근 14일 고장 작업지시 몇 건?", "history", {"count": len(orders(B, "14d", wo_kind="breakdown"))})
q(S, "en", "How many inspections this week?", "history", {"count": len(orders(S, "this_week", wo_kind="inspection"))})
q(S, "en", "Open work orders on GEN-01", "history", {"event_ids": orders(S, "30d", open=True, **{"asset.tag_no": "GEN-01"})})
q(B, "ko", "미해결 작업지시 몇 건?", "history", {"count": len(orders(B, "30d", open=True))})
q(S, "ko", "지난주 P2 이상 작업지시 몇 건?", "history", {"count": len(orders(S, "7d", priority={"P1", "P2"}))})
q(B, "en", "P1 work orders in the last 30 days", "history", {"event_ids": orders(B, "30d", priority="P1")})
q(S, "en", "Which work orders are P1 or P2 in the last 14 days?", "history", {"event_ids": orders(S, "14d", priority={"P1", "P2"})})
q(S, "en", "Work orders on air handlers in the last 30 days", "history", {"event_ids": orders(S, "30d", **{"asset.category": "ahu"})})
q(S, "ko", "지난 30일 동관 설비 작업지시", "history", {"event_ids": orders(S, "30d", **{"asset.building": "East"})})
q(S, "en", "Preventive work orders in the Annex in the last 30 days", "history", {"event_ids": orders(S, "30d", wo_kind="preventive", **{"asset.building": "Annex"})})
# Graph: impact, dependencies, paths, neighbours, narrowing by kind.
q(S, "en", "What is affected if SWB-01 fails?", "graph", {"codes": impact(S, "SWB-01"), "codes_exact": True})
q(S, "ko", "CH-01 고장 시 영향 범위", "graph", {"codes": impact(S, "CH-01"), "codes_exact": True})
q(B, "en", "What does AHU-01 depend on?", "graph", {"codes": ["CH-01", "UPS-01"]})
q(S, "en", "Path from PMP-02 to MRI-01", "graph", {"path": ["PMP-02", "CH-02", "MRI-01"]})
q(S, "ko", "UPS-02에서 BMS-SRV-01까지 경로", "graph", {"path": ["UPS-02", "BMS-SRV-01"]})
q(S, "en", "Path from AHU-03 to the nearest chiller", "graph", {"path": nearest_path(S, "AHU-03", "chiller")})
q(S, "ko", "MRI-01에서 가장 가까운 발전기까지 경로", "graph", {"path": nearest_path(S, "MRI-01", "generator")})
ahus = {a["tag_no"] for a in assets(S, category="ahu")}
q(S, "en", "Which air handlers would be hit if CH-02 fails?", "graph", {"codes": [c for c in impact(S, "CH-02") if c in ahus], "codes_exact": True})
q(S, "ko", "SWB-01 장애 시 영향받는 공조기", "graph", {"codes": [c for c in impact(S, "SWB-01") if c in ahus], "codes_exact": True})
q(S, "en", "Assets connected to CH-01", "graph", {"codes": neighbours(S, "CH-01")})
# Two steps the other way: the work orders of the assets a failure would hit.
q(S, "en", "Open work orders on what SWB-01's failure would affect", "history",
  {"event_ids": orders(S, "30d", open=True, **{"asset.tag_no": set(impact(S, "SWB-01"))})})
q(S, "ko", "CH-02 고장 시 영향받는 설비의 최근 14일 작업지시 몇 건?", "history",
  {"count": len(orders(S, "14d", **{"asset.tag_no": set(impact(S, "CH-02"))}))})
monitored = lambda org, tag: sorted(tag_of(l["to_key"]) for l in LINKS if l["org_code"] == org and l["from_key"] == key_of(org, tag) and l["link_kind"] == "monitors")
q(S, "en", "What does BMS-SRV-01 monitor?", "graph", {"codes": monitored(S, "BMS-SRV-01"), "codes_exact": True})
q(B, "ko", "BMS-SRV-01이 감시하는 설비", "graph", {"codes": monitored(B, "BMS-SRV-01"), "codes_exact": True})
# Documents.
doc = lambda org, topic: next(d["doc_no"] for d in DOCS if d["org_code"] == org and d["topic"] == topic)
q(S, "en", "How do I restart a chiller after a trip?", "document", {"doc_ids": [doc(S, "chiller")]})
q(B, "ko", "발전기 부하 시험 절차", "document", {"doc_ids": [doc(B, "generator")]})
q(B, "en", "UPS battery replacement procedure", "document", {"doc_ids": [doc(B, "ups")]})
q(S, "en", "Show the SOP for medical gas alarms", "document", {"doc_ids": [doc(S, "medical_gas")]})
# Refusals.
q(S, "en", "Delete all work orders", "reject", {}, route="reject")
q(S, "ko", "모든 작업지시를 삭제해줘", "reject", {}, route="reject")

for item in Q:
    # An expectation that nothing is found would pass on a planner that finds nothing.
    assert all(v not in ([], 0) for v in item["expect"].values()), item

os.makedirs(os.path.join(HERE, "questions"), exist_ok=True)
with open(os.path.join(HERE, "questions", "hospital-fm.jsonl"), "w", encoding="utf-8") as f:
    for item in Q:
        f.write(json.dumps(item, ensure_ascii=False) + "\n")
print(len(Q), "questions")
