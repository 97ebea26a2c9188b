#!/usr/bin/env python3
"""Generates the hospital-fm data set (CSV files beside this script), deterministically.

A hospital facilities estate of two tenants (org_code `seoulmed` and `busanmed`) whose asset
tags overlap (both have AHU-01): assets, the links between them, sensor readings, work orders
and standard operating procedures. Run it again and the files come out byte for byte the same.
"""
import csv
import datetime as dt
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)

# tag, name, name_ko, category, building, floor, maker, rated_kw, installed_on
ASSETS = [
    ("SWB-01", "Main Switchboard", "주 배전반", "switchboard", "Main", "B2", "LS Electric", 2500, "2008-05-12"),
    ("GEN-01", "Emergency Generator 1", "비상발전기 1호", "generator", "Main", "B2", "Cummins", 1500, "2008-06-01"),
    ("GEN-02", "Emergency Generator 2", "비상발전기 2호", "generator", "East", "B1", "Caterpillar", 1000, "2016-09-20"),
    ("UPS-01", "Operating Theatre UPS", "수술실 무정전전원장치", "ups", "Main", "3F", "Eaton", 200, "2014-03-15"),
    ("UPS-02", "Data Centre UPS", "전산실 무정전전원장치", "ups", "Annex", "1F", "Schneider", 120, "2019-11-02"),
    ("CH-01", "Chiller 1", "냉동기 1호", "chiller", "Main", "Roof", "Carrier", 450, "2010-07-07"),
    ("CH-02", "Chiller 2", "냉동기 2호", "chiller", "East", "Roof", "Trane", 380, "2018-04-18"),
    ("BLR-01", "Steam Boiler 1", "스팀 보일러 1호", "boiler", "Main", "B1", "Kyungdong", 600, "2009-02-10"),
    ("AHU-01", "Operating Theatre Air Handler", "수술실 공조기", "ahu", "Main", "3F", "Daikin", 75, "2012-08-30"),
    ("AHU-02", "Intensive Care Air Handler", "중환자실 공조기", "ahu", "Main", "4F", "Daikin", 60, "2013-01-22"),
    ("AHU-03", "Outpatient Air Handler", "외래 공조기", "ahu", "East", "1F", "Carrier", 45, "2017-06-05"),
    ("AHU-04", "Isolation Ward Air Handler", "격리병동 공조기", "ahu", "West", "5F", "Trane", 55, "2021-10-11"),
    ("PMP-01", "Chilled Water Pump 1", "냉수 펌프 1호", "pump", "Main", "B1", "Grundfos", 30, "2010-07-07"),
    ("PMP-02", "Chilled Water Pump 2", "냉수 펌프 2호", "pump", "East", "B1", "Wilo", 22, "2018-04-18"),
    ("MRI-01", "MRI Scanner", "MRI 장비", "imaging", "East", "2F", "Siemens", 80, "2019-03-03"),
    ("CT-01", "CT Scanner", "CT 장비", "imaging", "Main", "2F", "GE Healthcare", 65, "2015-12-12"),
    ("ELV-01", "Bed Elevator 1", "침대 엘리베이터 1호", "elevator", "Main", "B2", "Otis", 37, "2008-05-12"),
    ("ELV-02", "Bed Elevator 2", "침대 엘리베이터 2호", "elevator", "West", "B1", "Hyundai Elevator", 30, "2020-08-08"),
    ("BMS-SRV-01", "Building Management Server", "빌딩관리 서버", "server", "Annex", "1F", "Dell", 1, "2019-11-02"),
    ("MGS-01", "Medical Gas Manifold", "의료가스 매니폴드", "medical_gas", "West", "B1", "Amico", 5, "2011-04-04"),
]

# Per tenant: which assets exist (busanmed has a smaller estate), their state and criticality.
STATES = ["in_service", "in_service", "in_service", "standby", "under_repair"]
CRITICALITY = {
    "switchboard": "life_safety", "generator": "life_safety", "ups": "life_safety",
    "medical_gas": "life_safety", "ahu": "high", "chiller": "high", "imaging": "high",
    "boiler": "medium", "pump": "medium", "elevator": "medium", "server": "low",
}
BUSAN_SKIP = {"AHU-04", "CT-01", "ELV-02", "MGS-01"}

# from, kind, to: "A powers B" (B needs A), "A feeds B", "A serves B" (the area/asset A
# conditions), "A backs_up B", "A monitors B" (no dependency).
LINKS = [
    ("SWB-01", "powers", "UPS-01"), ("SWB-01", "powers", "UPS-02"), ("SWB-01", "powers", "CH-01"),
    ("SWB-01", "powers", "CH-02"), ("SWB-01", "powers", "ELV-01"), ("SWB-01", "powers", "ELV-02"),
    ("SWB-01", "powers", "MRI-01"), ("SWB-01", "powers", "CT-01"), ("SWB-01", "powers", "BLR-01"),
    ("GEN-01", "backs_up", "SWB-01"), ("GEN-02", "backs_up", "SWB-01"),
    ("UPS-01", "powers", "AHU-01"), ("UPS-02", "powers", "BMS-SRV-01"),
    ("CH-01", "feeds", "AHU-01"), ("CH-01", "feeds", "AHU-02"), ("CH-02", "feeds", "AHU-03"),
    ("CH-02", "feeds", "AHU-04"), ("CH-02", "feeds", "MRI-01"),
    ("PMP-01", "feeds", "CH-01"), ("PMP-02", "feeds", "CH-02"),
    ("BLR-01", "feeds", "AHU-02"), ("MGS-01", "feeds", "AHU-04"),
    ("BMS-SRV-01", "monitors", "AHU-01"), ("BMS-SRV-01", "monitors", "AHU-02"),
    ("BMS-SRV-01", "monitors", "CH-01"), ("BMS-SRV-01", "monitors", "CH-02"),
]

# Quantities each category reports: name -> (base, spread)
QUANTITIES = {
    "ahu": {"supply_temp": (13.0, 2.5), "power_draw": (40.0, 12.0)},
    "chiller": {"supply_temp": (7.0, 1.5), "power_draw": (250.0, 60.0), "vibration": (3.0, 2.0)},
    "generator": {"power_draw": (20.0, 15.0), "vibration": (4.0, 3.0)},
    "ups": {"power_draw": (90.0, 25.0)},
    "pump": {"power_draw": (18.0, 5.0), "vibration": (2.5, 2.5)},
    "imaging": {"power_draw": (45.0, 20.0)},
    "boiler": {"power_draw": (300.0, 80.0)},
}

WO_KINDS = ["breakdown", "preventive", "inspection", "alarm"]
PRIORITIES = ["P1", "P2", "P3", "P4"]
SUMMARIES = {
    "breakdown": ["Unit tripped", "Motor failure", "Compressor fault", "Belt snapped"],
    "preventive": ["Quarterly service", "Filter replacement", "Annual overhaul"],
    "inspection": ["Safety inspection", "Load test", "Thermal imaging survey"],
    "alarm": ["High temperature alarm", "Low pressure alarm", "Vibration alarm", "Power loss alarm"],
}

DOCS = [
    ("Emergency generator load test procedure", "generator", "Run each emergency generator under load for 30 minutes every month; record voltage, frequency and fuel level; transfer back to mains."),
    ("Chiller restart after a trip", "chiller", "Check chilled water flow and the condenser pumps, reset the compressor protection, restart the chiller and watch the supply temperature."),
    ("Operating theatre air handler filter change", "ahu", "Isolate the air handler, replace HEPA filters, run a pressure test and record the differential pressure of the theatre."),
    ("UPS battery replacement", "ups", "Put the UPS on bypass, replace battery strings one at a time, run a discharge test and return the UPS to online mode."),
    ("Medical gas alarm response", "medical_gas", "On a medical gas pressure alarm, check the manifold, switch to the reserve bank and inform the ward nurses."),
    ("Elevator entrapment rescue", "elevator", "Call the lift contractor, communicate with the passengers, use the manual lowering procedure only when trained."),
]


def rows_for(org, seed):
    rng = random.Random(seed)
    assets = []
    for i, (tag, name, name_ko, cat, bld, floor, maker, kw, inst) in enumerate(ASSETS):
        if org == "busanmed" and tag in BUSAN_SKIP:
            continue
        state = STATES[rng.randrange(len(STATES))]
        if org == "busanmed" and tag == "AHU-01":
            inst = "2022-02-14"
        key = f"{org[:2]}-{i + 1:04d}"
        assets.append({
            "asset_key": key, "org_code": org, "tag_no": tag, "asset_name": name,
            "asset_name_ko": name_ko, "category": cat, "building": bld, "floor_no": floor,
            "service_state": state, "criticality": CRITICALITY[cat], "maker": maker,
            "rated_kw": kw, "installed_on": inst,
        })
    by_tag = {a["tag_no"]: a["asset_key"] for a in assets}
    links = [
        {"org_code": org, "from_key": by_tag[a], "link_kind": k, "to_key": by_tag[b]}
        for a, k, b in LINKS if a in by_tag and b in by_tag
    ]
    readings = []
    start = ANCHOR - dt.timedelta(days=14)
    for a in assets:
        for q, (base, spread) in QUANTITIES.get(a["category"], {}).items():
            t = start
            while t < ANCHOR:
                value = round(base + rng.uniform(-spread, spread), 2)
                readings.append({
                    "org_code": org, "asset_key": a["asset_key"], "quantity": q,
                    "read_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "amount": value,
                })
                t += dt.timedelta(hours=2)
    orders = []
    for n in range(90 if org == "seoulmed" else 50):
        a = assets[rng.randrange(len(assets))]
        kind = WO_KINDS[rng.randrange(len(WO_KINDS))]
        opened = ANCHOR - dt.timedelta(hours=rng.randrange(1, 24 * 60))
        closed = ""
        if rng.random() < 0.7:
            closed_t = opened + dt.timedelta(hours=rng.randrange(1, 72))
            if closed_t < ANCHOR:
                closed = closed_t.strftime("%Y-%m-%dT%H:%M:%SZ")
        orders.append({
            "wo_no": f"WO-{org[:2].upper()}-{n + 1:04d}", "org_code": org,
            "asset_key": a["asset_key"], "wo_kind": kind,
            "priority": PRIORITIES[rng.randrange(len(PRIORITIES))],
            "summary": SUMMARIES[kind][rng.randrange(len(SUMMARIES[kind]))],
            "opened_at": opened.strftime("%Y-%m-%dT%H:%M:%SZ"), "closed_at": closed,
        })
    docs = [
        {"doc_no": f"SOP-{org[:2].upper()}-{i + 1:02d}", "org_code": org, "title": t,
         "topic": topic, "body": body, "issued_at": "2025-06-01T00:00:00Z"}
        for i, (t, topic, body) in enumerate(DOCS)
    ]
    return assets, links, readings, orders, docs


def write(name, rows):
    with open(os.path.join(HERE, f"{name}.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main():
    tables = {"fm_asset": [], "fm_link": [], "fm_reading": [], "work_order": [], "sop_doc": []}
    for org, seed in (("seoulmed", 11), ("busanmed", 23)):
        for name, rows in zip(tables, rows_for(org, seed)):
            tables[name].extend(rows)
    for name, rows in tables.items():
        write(name, rows)


if __name__ == "__main__":
    main()
