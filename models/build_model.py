"""Generate the Kazakhstan regional model (Vensim .mdl) from a template and the data in models/data.

Usage (from the repository root)::

    python models/build_model.py                  # writes both .mdl files from models/data
    python models/build_model.py --refresh-data   # first re-derives models/data from the sources

The 20-element data arrays are never hand-typed: ``base_inputs`` derives every initial value
and calibrated constant from the CSVs in ``models/data`` (which carry a ``source`` column on
every row), and ``render_model`` writes them into the equations. Issue #4; equations follow
the design notes (shared/design/MODEL-DESIGN.md, section 3); models/README.md documents
every variable.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "kazakhstan"

# (model element name, BNS code), in the order the issue fixes.
REGIONS: list[tuple[str, str]] = [
    ("Astana", "AST"),
    ("Almaty city", "ALA"),
    ("Shymkent", "SHM"),
    ("Abai", "ABY"),
    ("Akmola", "AKM"),
    ("Aktobe", "AKT"),
    ("Almaty region", "ALM"),
    ("Atyrau", "ATY"),
    ("West Kazakhstan", "ZKO"),
    ("Jambyl", "ZHM"),
    ("Jetisu", "ZHT"),
    ("Karaganda", "KRG"),
    ("Kostanay", "KST"),
    ("Kyzylorda", "KZL"),
    ("Mangystau", "MNG"),
    ("Pavlodar", "PVL"),
    ("North Kazakhstan", "SKO"),
    ("Turkistan", "TRK"),
    ("Ulytau", "ULT"),
    ("East Kazakhstan", "VKO"),
]
NAMES = [n for n, _ in REGIONS]
CODES = [c for _, c in REGIONS]
# Units created on 8 Jun 2022 from a parent; before 2021/2022 the parent's rows include the child.
SPLITS = {"ABY": "VKO", "ZHT": "ALM", "ULT": "KRG"}

# Administrative centres (latitude, longitude in degrees, rounded to 0.01). Used only for the
# great-circle distance matrix of the migration model.
CAPITALS = {
    "AST": ("Astana", 51.17, 71.45),
    "ALA": ("Almaty", 43.24, 76.89),
    "SHM": ("Shymkent", 42.32, 69.59),
    "ABY": ("Semey", 50.41, 80.23),
    "AKM": ("Kokshetau", 53.28, 69.39),
    "AKT": ("Aktobe", 50.28, 57.17),
    "ALM": ("Konaev", 43.87, 77.07),
    "ATY": ("Atyrau", 47.11, 51.92),
    "ZKO": ("Oral", 51.23, 51.37),
    "ZHM": ("Taraz", 42.90, 71.37),
    "ZHT": ("Taldykorgan", 45.02, 78.37),
    "KRG": ("Karaganda", 49.80, 73.10),
    "KST": ("Kostanay", 53.21, 63.62),
    "KZL": ("Kyzylorda", 44.85, 65.51),
    "MNG": ("Aktau", 43.65, 51.16),
    "PVL": ("Pavlodar", 52.29, 76.95),
    "SKO": ("Petropavl", 54.87, 69.14),
    "TRK": ("Turkistan", 43.30, 68.25),
    "ULT": ("Jezkazgan", 47.80, 67.71),
    "VKO": ("Oskemen", 49.95, 82.61),
}
CAPITALS_SOURCE = (
    "coordinates of the regional administrative centres (Wikipedia city articles, rounded to "
    "0.01 degree)"
)

# Share of GRP that is extractive (oil, gas, ore) rent, treated as exogenous (design notes,
# principle 3). BNS regional GVA by activity is not in the data set: these are assumptions [A],
# chosen so that the national total (13.9 % of 2022 GDP) is close to BNS's mining share of
# GDP (15.5 of 120.6 trn KZT = 12.9 %, income-approach table 2023).
RESOURCE_SHARES = {
    "ATY": 0.50,
    "MNG": 0.45,
    "ZKO": 0.40,
    "AKT": 0.25,
    "KZL": 0.25,
    "ULT": 0.30,
    "KRG": 0.10,
    "PVL": 0.08,
    "VKO": 0.10,
    "ABY": 0.05,
}
RESOURCE_SOURCE = (
    "assumption [A]: extractive share of GRP; national sum 13.9% of 2022 GDP vs BNS mining "
    "share 12.9% in 2023 (MODEL-DESIGN.md section 9.3, BNS income-approach GDP 2023)"
)

RAW_FILES = [
    "population_avg_annual.csv",
    "grp_nominal.csv",
    "grp_volume_index.csv",
    "employment.csv",
    "unemployment_rate.csv",
    "investment_fixed_capital.csv",
    "emissions_stationary_sources.csv",
    "internal_migration.csv",
    "total_fertility_rate.csv",
    "national_aggregates.csv",
    "birth_death_rates_partial.csv",
    "registered_deaths_partial.csv",
]
YEARS = list(range(2010, 2023))
# Last year of the fast-growth regime (oil-price collapse of mid-2014; World Bank productivity
# growth ~2.3%/yr before 2014 and 0.4-1.1%/yr in 2015-18, design notes s.4). Fixed, not fitted.
TFP_BREAK_YEAR = 2014

# ---------------------------------------------------------------------------------------------
# Literature priors (MODEL-DESIGN.md section 4). name -> (value, units, source)
# ---------------------------------------------------------------------------------------------
PRIORS: dict[str, tuple[float, str, str]] = {
    "capital share": (
        0.40,
        "Dmnl",
        "design notes s.4: BNS 2023 factor shares, resource rents removed [D]",
    ),
    "depreciation rate": (0.045, "1/Year", "design notes s.4: CFC 10.3% of GDP / K/Y 2.3 [D]"),
    "real interest rate": (0.10, "1/Year", "design notes s.4 [A]"),
    "investment allocation elasticity": (2.0, "Dmnl", "design notes s.4 theta_I [A]"),
    "TFP growth prior": (0.010, "1/Year", "design notes s.4: World Bank productivity growth [V]"),
    "public capital elasticity": (0.08, "Dmnl", "Bom & Ligthart (2014) short run [V]"),
    "public capital share of local spending": (0.20, "Dmnl", "assumption [A] kappa_G"),
    "public capital depreciation rate": (0.03, "1/Year", "design notes s.4 delta_G [A]"),
    "industrial site TFP effect": (0.03, "Dmnl", "design notes s.3.3 psi_SEZ 0.02-0.05 [A]"),
    "employment adjustment time": (1.0, "Year", "design notes s.4 tau_E [M]"),
    "capital deepening rate": (
        0.01 / 0.6,
        "1/Year",
        "design notes L2: balanced-growth deepening g_A / (1 - alpha) with the TFP prior 1%/yr "
        "and alpha 0.4 [D]",
    ),
    "employment elasticity": (
        0.5,
        "Dmnl",
        "assumption [A]: employment rate response to jobs per worker",
    ),
    "max employment rate": (0.99, "Dmnl", "assumption [A]: 1% frictional floor on unemployment"),
    "employment rate curvature": (20.0, "Dmnl", "smooth-minimum exponent (design notes s.3.0)"),
    "household share of nonresource GRP": (
        0.55,
        "Dmnl",
        "assumption [A] eta_H: compensation 30.8% + mixed income (BNS 2023)",
    ),
    "household share of resource rents": (0.05, "Dmnl", "design notes s.3.6 eta_R small [A]"),
    "household share of local spending": (
        0.50,
        "Dmnl",
        "assumption [A]: public wages and benefits",
    ),
    "local revenue rate": (0.06, "Dmnl", "design notes s.4 tau_loc 0.04-0.07 [A]"),
    "national tax rate": (0.12, "Dmnl", "assumption [A]: national revenue share of GDP"),
    "special subsidy threshold": (1.0, "Dmnl", "design notes s.3.7 theta_lag [A]"),
    "subsidised loan term": (5.0, "Year", "assumption [A]: years of interest subsidy per loan"),
    "income utility weight": (
        0.5,
        "Dmnl",
        "design notes s.4 beta_y prior 1.0, range 0.5-1.5 [A]; lower end because the 2008-14 "
        "crisis weakened the wage effect (J. Dev. Studies 2017); see models/README.md",
    ),
    "public service utility weight": (
        0.1,
        "Dmnl",
        "design notes s.3.8 beta_g [A]; see models/README.md",
    ),
    "pollution utility weight": (0.2, "Dmnl", "design notes s.3.8 beta_p [A]"),
    "out migration push elasticity": (0.5, "Dmnl", "design notes s.3.8 beta_push [A]"),
    "distance elasticity": (1.0, "Dmnl", "design notes s.4 gamma [A]"),
    "attractiveness perception time": (2.0, "Year", "design notes s.4 tau_U [V]/[A]"),
    "transport distance effect": (0.3, "Dmnl", "assumption [A] psi_T: max cut in migration cost"),
    "transport out migration effect": (
        0.2,
        "Dmnl",
        "assumption [A]: max rise in gross out-migration",
    ),
    "transport network half effect": (
        2000.0,
        "bn KZT",
        "assumption [A]: network stock giving half effect",
    ),
    "pollution mortality sensitivity": (0.05, "Dmnl", "design notes s.3.2 m_p [A]"),
    "base capture fraction": (
        0.934,
        "Dmnl",
        "BNS: 93.4% of stationary-source pollutants captured (2022) [V]",
    ),
    "max capture fraction": (0.98, "Dmnl", "assumption [A]"),
    "abatement capital scale factor": (
        0.01,
        "Dmnl",
        "assumption [A]: abatement capital (share of GRP) closing 63% of the capture gap",
    ),
    "abatement depreciation rate": (0.05, "1/Year", "design notes s.4 delta_A [A]"),
    "pollution half life": (1.5, "Year", "World3 AHL70 = 1.5 yr (design notes s.2.6) [V]"),
    "emission intensity decline rate": (
        0.01,
        "1/Year",
        "design notes s.4 g_eps [A]; recalibrated in the hindcast",
    ),
    "harberger growth rate": (
        0.04,
        "1/Year",
        "real GDP growth 2010-2019 ~4%/yr (national_aggregates.csv) [D]",
    ),
}


def prior(name: str) -> float:
    return PRIORS[name][0]


# ---------------------------------------------------------------------------------------------
# Data preparation: copy the sources and derive a harmonised 20-region table
# ---------------------------------------------------------------------------------------------
def _pivot(df: pd.DataFrame) -> pd.DataFrame:
    return df.pivot_table(index="region_code", columns="year", values="value", aggfunc="first")


def _split_children(table: pd.DataFrame, share_year: int, last_old_year: int) -> pd.DataFrame:
    """Split old-boundary parent rows into parent and child by the child's share in share_year."""
    t = table.copy()
    for child, parent in SPLITS.items():
        share = t.loc[child, share_year] / (t.loc[child, share_year] + t.loc[parent, share_year])
        for y in [c for c in t.columns if c <= last_old_year]:
            if pd.isna(t.loc[parent, y]):
                continue
            combined = t.loc[parent, y]
            t.loc[child, y] = share * combined
            t.loc[parent, y] = (1 - share) * combined
    return t


def harmonise(src: Path) -> pd.DataFrame:
    """Derive 20-region series 2010-2022 in 2022 boundaries; returns a long table with notes."""
    rows: list[dict] = []

    def add(var: str, table: pd.DataFrame, unit: str, source: str, note: str) -> None:
        for code in CODES:
            for y in YEARS:
                v = table.loc[code, y] if (code in table.index and y in table.columns) else np.nan
                if pd.notna(v):
                    rows.append(
                        {
                            "region": NAMES[CODES.index(code)],
                            "region_code": code,
                            "year": y,
                            "variable": var,
                            "value": float(v),
                            "unit": unit,
                            "source": source,
                            "note": note,
                        }
                    )

    pop = _pivot(pd.read_csv(src / "population_avg_annual.csv"))
    add(
        "population",
        pop,
        "persons (annual average)",
        "population_avg_annual.csv",
        "BNS restated to 2022 boundaries; 2022 includes the census re-basing jump",
    )

    nom = _pivot(pd.read_csv(src / "grp_nominal.csv"))
    vi = _pivot(pd.read_csv(src / "grp_volume_index.csv"))
    real = pd.DataFrame(np.nan, index=CODES, columns=YEARS)
    simple = [c for c in CODES if c not in SPLITS and c not in SPLITS.values()]
    for c in simple:
        real.loc[c, 2022] = nom.loc[c, 2022]
        for y in range(2022, 2010, -1):
            real.loc[c, y - 1] = real.loc[c, y] / (vi.loc[c, y] / 100.0)
    for child, parent in SPLITS.items():
        for c in (child, parent):
            real.loc[c, 2022] = nom.loc[c, 2022]
            real.loc[c, 2021] = nom.loc[c, 2022] / (vi.loc[c, 2022] / 100.0)
        comb21 = real.loc[child, 2021] + real.loc[parent, 2021]
        vi_child = vi.loc[child, 2021] if pd.notna(vi.loc[child, 2021]) else vi.loc[parent, 2021]
        w = real.loc[child, 2021] / comb21
        vi_comb = w * vi_child + (1 - w) * vi.loc[parent, 2021]
        comb = {2021: comb21, 2020: comb21 / (vi_comb / 100.0)}
        for y in range(2020, 2010, -1):
            comb[y - 1] = comb[y] / (vi.loc[parent, y] / 100.0)
        for y in range(2010, 2021):
            real.loc[child, y] = w * comb[y]
            real.loc[parent, y] = (1 - w) * comb[y]
    add(
        "grp_real",
        real / 1000.0,
        "bn KZT/year (constant 2022 prices)",
        "grp_nominal.csv (2022 level) and grp_volume_index.csv (chained backwards)",
        "derived: real_{t-1} = real_t / (volume index_t/100); Abai, Jetisu, Ulytau and their "
        "parents chained as one old-boundary unit before 2021 and split by 2021 real shares",
    )
    add(
        "grp_nominal",
        nom / 1000.0,
        "bn KZT/year (current prices)",
        "grp_nominal.csv",
        "as published; Abai, Jetisu, Ulytau only from 2021 (parents in old boundaries before)",
    )

    # National deflator (2022 = 1) from the sum of regional nominal and real GRP.
    deflator = nom.loc[CODES].sum() / real.sum()

    emp = _pivot(pd.read_csv(src / "employment.csv"))
    emp = _split_children(emp.loc[CODES], 2022, 2021)
    add(
        "employment",
        emp * 1000.0,
        "persons",
        "employment.csv (LFS, thousand persons x 1000)",
        "Abai, Jetisu, Ulytau before 2022: parent's old-boundary value split by 2022 shares; "
        "2015 missing in source",
    )

    un = _pivot(pd.read_csv(src / "unemployment_rate.csv"))
    un_years = [y for y in un.columns if y < 2022]
    for child, parent in SPLITS.items():
        for y in un_years:
            un.loc[child, y] = un.loc[parent, y]
    for c in ("SHM", "TRK"):
        for y in un_years:
            if pd.isna(un.loc[c, y]) and pd.notna(un.loc["YKO", y]):
                un.loc[c, y] = un.loc["YKO", y]
    add(
        "unemployment_rate",
        un / 100.0,
        "fraction of labour force",
        "unemployment_rate.csv",
        "children before 2022 take the parent's rate; Shymkent/Turkistan take South Kazakhstan's "
        "where missing",
    )

    inv = _pivot(pd.read_csv(src / "investment_fixed_capital.csv"))
    sh = inv.loc["SHM", 2019:2022].sum() / (
        inv.loc["SHM", 2019:2022].sum() + inv.loc["TRK", 2019:2022].sum()
    )
    for y in range(2010, 2018):
        inv.loc["SHM", y] = sh * inv.loc["YKO", y]
        inv.loc["TRK", y] = (1 - sh) * inv.loc["YKO", y]
    inv = _split_children(inv.loc[CODES], 2022, 2021)
    add(
        "investment_nominal",
        inv / 1000.0,
        "bn KZT/year (current prices)",
        "investment_fixed_capital.csv",
        "South Kazakhstan 2010-2017 split into Shymkent/Turkistan by 2019-2022 shares; Abai, "
        "Jetisu, Ulytau before 2022 split from parents by 2022 shares",
    )
    add(
        "investment_real",
        inv.div(deflator, axis=1) / 1000.0,
        "bn KZT/year (constant 2022 prices)",
        "investment_fixed_capital.csv, grp_nominal.csv",
        "derived: nominal investment / national GDP deflator (sum nominal GRP / sum real GRP)",
    )

    em_raw = pd.read_csv(src / "emissions_stationary_sources.csv")
    em = _pivot(em_raw[em_raw.source.str.startswith("open-data")])
    sh = em.loc["SHM", 2018] / (em.loc["SHM", 2018] + em.loc["TRK", 2018])
    for y in range(2010, 2018):
        em.loc["SHM", y] = sh * em.loc["YKO", y]
        em.loc["TRK", y] = (1 - sh) * em.loc["YKO", y]
    em = _split_children(em.loc[CODES, YEARS], 2022, 2021)
    # Almaty city's coverage changed in 2014 (x3.5 jump, flagged in the source README): the
    # 2010-2013 values are not comparable with later years and are left out.
    em.loc["ALA", [2010, 2011, 2012, 2013]] = np.nan
    add(
        "emissions",
        em * 1000.0,
        "tonnes/year",
        "emissions_stationary_sources.csv (kt x 1000)",
        "South Kazakhstan before 2018 split by 2018 shares; Abai, Jetisu, Ulytau before 2022 "
        "split from parents by 2022 shares; Almaty city 2010-2013 dropped (coverage change in "
        "2014); 2022 break (small emitters dropped)",
    )

    mig = pd.read_csv(src / "internal_migration.csv")
    for kind in ("arrivals", "departures", "net"):
        t = mig[mig.unit.str.contains(kind)].pivot_table(
            index="region_code", columns="year", values="value"
        )
        add(
            f"migration_{kind}",
            t,
            "persons/year",
            "internal_migration.csv",
            "inter-regional migration 2022; gross-flow coverage undocumented (use net with care)",
        )

    tfr = _pivot(pd.read_csv(src / "total_fertility_rate.csv"))
    add("tfr", tfr, "births per woman", "total_fertility_rate.csv", "regional TFR 2018-2022")
    return pd.DataFrame(rows)


def prepare_data(src: Path = DEFAULT_SOURCE) -> None:
    """Copy the source CSVs into models/data and write the derived tables."""
    DATA.mkdir(exist_ok=True)
    for f in RAW_FILES:
        shutil.copy(src / f, DATA / f)
    harmonise(src).to_csv(DATA / "harmonised_series.csv", index=False)
    cap = pd.DataFrame(
        [
            {
                "region": NAMES[CODES.index(c)],
                "region_code": c,
                "centre": v[0],
                "latitude": v[1],
                "longitude": v[2],
                "unit": "degrees",
                "source": CAPITALS_SOURCE,
            }
            for c, v in CAPITALS.items()
        ]
    )
    cap.to_csv(DATA / "region_centres.csv", index=False)
    res = pd.DataFrame(
        [
            {
                "region": n,
                "region_code": c,
                "value": RESOURCE_SHARES.get(c, 0.0),
                "unit": "fraction of GRP",
                "source": RESOURCE_SOURCE,
            }
            for n, c in REGIONS
        ]
    )
    res.to_csv(DATA / "resource_rent_shares.csv", index=False)
    pri = pd.DataFrame(
        [{"parameter": k, "value": v[0], "unit": v[1], "source": v[2]} for k, v in PRIORS.items()]
    )
    pri.to_csv(DATA / "parameter_priors.csv", index=False)


# ---------------------------------------------------------------------------------------------
# Base-year inputs
# ---------------------------------------------------------------------------------------------
def series(name: str) -> pd.DataFrame:
    """Harmonised series ``name`` as a (region code x year) table."""
    h = pd.read_csv(DATA / "harmonised_series.csv")
    t = h[h.variable == name].pivot_table(index="region_code", columns="year", values="value")
    return t.reindex(CODES)


def national(unit_prefix: str) -> pd.Series:
    n = pd.read_csv(DATA / "national_aggregates.csv")
    n = n[n.unit.str.startswith(unit_prefix)]
    n = n[n.year.astype(str).str.fullmatch(r"\d{4}")]
    return pd.Series(n.value.values, index=n.year.astype(int).values)


def distance_matrix() -> np.ndarray:
    cap = pd.read_csv(DATA / "region_centres.csv").set_index("region_code").loc[CODES]
    lat = np.radians(cap.latitude.to_numpy())
    lon = np.radians(cap.longitude.to_numpy())
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin(dlon / 2) ** 2
    d = 2 * 6371.0 * np.arcsin(np.sqrt(a))
    np.fill_diagonal(d, 1.0)  # unused: the diagonal of the flow matrix is masked
    return d


def vital_rates(base: int) -> tuple[np.ndarray, np.ndarray]:
    """Crude birth and death rates by region (1/year).

    Births: regional TFR 2022 times national CBR / national TFR, rescaled so births add up to
    the national CBR. Deaths: registered deaths 2019 / population 2019 where BNS data exist
    (old boundaries: the child gets the parent's rate), North Kazakhstan from its 2022 CDR,
    and one common rate for the remaining regions so that deaths add up to the national CDR.
    For the hindcast (base 2010) the national rates are the 2010-2018 averages.
    """
    pop = series("population")
    tfr = series("tfr")[2022].to_numpy()
    bd = pd.read_csv(DATA / "birth_death_rates_partial.csv")
    kz = bd[(bd.region_code == "KZ") & bd.note.str.contains("final vintage", na=False)]
    cbr_nat = kz[kz.unit.str.startswith("births")].set_index("year").value / 1000.0
    cdr_nat = kz[kz.unit.str.startswith("deaths")].set_index("year").value / 1000.0
    if base == 2022:
        cbr, cdr, p = cbr_nat[2022], cdr_nat[2022], pop[2022].to_numpy()
    else:
        cbr, cdr = cbr_nat.loc[2010:2018].mean(), cdr_nat.loc[2010:2018].mean()
        p = pop[base].to_numpy()
    b = tfr / tfr.mean()
    b = b * cbr * p.sum() / (b * p).sum()

    deaths = pd.read_csv(DATA / "registered_deaths_partial.csv")
    d19 = deaths[deaths.year == 2019].set_index("region_code").value
    p19 = pop[2019]
    rate = {}
    for code, v in d19.items():
        children = [c for c, par in SPLITS.items() if par == code]
        rate[code] = v / (p19[code] + sum(p19[c] for c in children))
        for c in children:
            rate[c] = rate[code]
    sko = bd[(bd.region_code == "SKO") & bd.unit.str.startswith("deaths")].value.iloc[0] / 1000.0
    rate["SKO"] = sko * cdr_nat[2019] / cdr_nat[2022]
    known = np.array([c in rate for c in CODES])
    d = np.array([rate.get(c, np.nan) for c in CODES])
    total_2019 = cdr_nat[2019] * p19.sum()
    rest = (total_2019 - np.nansum(d * p19.to_numpy())) / p19.to_numpy()[~known].sum()
    d[~known] = rest
    d = d * cdr * p.sum() / (d * p).sum()
    return b, d


@dataclass
class BaseInputs:
    """Everything the template needs for one base year."""

    year: int
    final: int
    population: np.ndarray
    employment: np.ndarray
    unemployment: np.ndarray
    grp: np.ndarray
    resource_share: np.ndarray
    capital: np.ndarray
    investment_share: np.ndarray
    investment_rate: float
    emissions: np.ndarray
    birth_rate: np.ndarray
    death_rate: np.ndarray
    out_migration_rate: np.ndarray
    distance: np.ndarray
    external_migration_rate: np.ndarray = field(default_factory=lambda: np.zeros(20))
    external_migration_rate_early: np.ndarray = field(default_factory=lambda: np.zeros(20))
    tfp_growth: np.ndarray = field(default_factory=lambda: np.full(20, prior("TFP growth prior")))
    # Growth before the 2014 regime break (hindcast only; the forecast starts after it).
    tfp_growth_early: np.ndarray = field(
        default_factory=lambda: np.full(20, prior("TFP growth prior"))
    )
    resource_growth: np.ndarray = field(default_factory=lambda: np.zeros(20))
    resource_growth_early: np.ndarray = field(default_factory=lambda: np.zeros(20))
    lf_trend: np.ndarray = field(default_factory=lambda: np.zeros(20))
    capital_deepening_rate: float = prior("capital deepening rate")
    employment_elasticity: float = prior("employment elasticity")
    emission_decline_rate: np.ndarray = field(
        default_factory=lambda: np.full(20, prior("emission intensity decline rate"))
    )
    emission_decline_shift: float = 0.0
    investment_elasticity: float = prior("investment allocation elasticity")
    birth_rate_trend: float = 0.0
    names: list[str] = field(default_factory=lambda: list(NAMES))
    symmetric: bool = False


def perpetual_inventory(inv_real: pd.DataFrame, upto: int) -> np.ndarray:
    """Non-resource capital by PIM: K_2010 = mean(I_2010..2012)/(g + delta), then K_t =
    (1 - delta) K_{t-1} + I_t (Harberger 1978 initialisation)."""
    delta, g = prior("depreciation rate"), prior("harberger growth rate")
    nr = 1.0 - np.array([RESOURCE_SHARES.get(c, 0.0) for c in CODES])
    i = inv_real.mul(nr, axis=0)
    k = i[[2010, 2011, 2012]].mean(axis=1).to_numpy() / (g + delta)
    for y in range(2011, upto + 1):
        k = (1 - delta) * k + i[y].to_numpy()
    return k


def base_inputs(base: int) -> BaseInputs:
    """Initial values and constants for base year 2022 (forecast) or 2010 (hindcast)."""
    pop = series("population")[base].to_numpy()
    emp = series("employment")[base].to_numpy()
    un = series("unemployment_rate")[base].to_numpy()
    grp = series("grp_real")[base].to_numpy()
    inv = series("investment_real")
    share = np.array([RESOURCE_SHARES.get(c, 0.0) for c in CODES])
    nr_inv = inv.mul(1 - share, axis=0)
    window = [2010, 2011, 2012] if base == 2010 else [2020, 2021, 2022]
    inv_share = nr_inv[window].mean(axis=1).to_numpy()
    inv_share = inv_share / inv_share.sum()
    grp_all = series("grp_real")
    inv_rate = float(nr_inv[window].sum().sum() / grp_all[window].sum().sum())
    emissions = series("emissions")
    # Where the base year is missing (Almaty city before 2014) use the first comparable year.
    em = emissions.T.bfill().T[base].to_numpy()
    b, d = vital_rates(base)
    dep = series("migration_departures")[2022].to_numpy()
    p22 = series("population")[2022].to_numpy()
    return BaseInputs(
        year=base,
        final=2050 if base == 2022 else 2022,
        population=pop,
        employment=emp,
        unemployment=un,
        grp=grp,
        resource_share=share,
        capital=perpetual_inventory(inv, base),
        investment_share=inv_share,
        investment_rate=inv_rate,
        emissions=em,
        birth_rate=b,
        death_rate=d,
        out_migration_rate=dep / p22,
        distance=distance_matrix(),
        birth_rate_trend=-0.01 if base == 2022 else 0.0,
    )


def base_utility_terms(b: BaseInputs) -> np.ndarray:
    """Income and public-service terms of the attractiveness utility at the base year (prior
    weights), computed with the model's own formulas (levers off, so local spending = own
    revenue)."""
    res = b.resource_share * b.grp
    ynr = b.grp - res
    spending = prior("local revenue rate") * b.grp
    income = (
        prior("household share of nonresource GRP") * ynr
        + prior("household share of resource rents") * res
        + prior("household share of local spending") * spending
    ) / b.population
    expected = income * (1 - b.unemployment)
    services = (1 - prior("public capital share of local spending")) * spending / b.population
    w = b.population / b.population.sum()
    return prior("income utility weight") * np.log(expected / (w * expected).sum()) + prior(
        "public service utility weight"
    ) * np.log(services / (w * services).sum())


def base_attractiveness(b: BaseInputs) -> np.ndarray:
    """Attractiveness of the initial state: the destination fixed effects (from 2022, the only
    migration year) plus the utility terms of the base year's statistics at the prior weights.

    The model's utility is written relative to its initial state, so changing the utility
    weights never moves the initial flows. The hindcast (base 2010) uses 2010 statistics
    here, no 2022 state."""
    return calibrated_xi() + base_utility_terms(b)


def calibrate_attractiveness(b: BaseInputs, arrivals: np.ndarray) -> np.ndarray:
    """Destination fixed effects xi so the logit model reproduces 2022 arrivals exactly.

    Iterates v_j <- v_j + ln(A_j / A_hat_j), a balancing (IPF) step that converges because
    arrivals are increasing in v_j; xi = v - (base utility terms), normalised to mean 0.
    """
    out = b.out_migration_rate * b.population
    off = 1.0 - np.eye(20)
    base_w = off * b.population[None, :] * b.distance ** (-prior("distance elasticity"))
    target = arrivals * out.sum() / arrivals.sum()
    v = np.zeros(20)
    for _ in range(5000):
        w = base_w * np.exp(v)[None, :]
        pi = w / w.sum(axis=1, keepdims=True)
        a_hat = out @ pi
        step = np.log(target / a_hat)
        v += step
        if np.max(np.abs(step)) < 1e-13:
            break
    else:
        raise RuntimeError("attractiveness calibration did not converge")
    xi = v - base_utility_terms(b)
    return xi - xi.mean()


def load_calibration(b: BaseInputs) -> BaseInputs:
    """Apply models/data/calibrated_parameters.csv (written by calibrate_kazakhstan.py).

    The hindcast (base 2010) takes the 2010-2018 fit, so that 2019-2022 stay out of the
    calibration; the forecast (base 2022) takes the full-period fit (design notes 6.2).
    """
    uses = {2010: "hindcast", 2022: "forecast"}
    if b.year not in uses:
        raise ValueError(
            f"no calibration for base year {b.year}: calibrated_parameters.csv has a hindcast "
            "set (base 2010, fitted on 2010-2018) and a forecast set (base 2022); a hindcast "
            "from another year needs its own fit in calibrate_kazakhstan.py"
        )
    path = DATA / "calibrated_parameters.csv"
    if not path.exists():
        return b
    cal = pd.read_csv(path)
    if "used_by" not in cal.columns:
        raise ValueError(f"{path}: no 'used_by' column; run models/calibrate_kazakhstan.py")
    cal = cal[cal.used_by == uses[b.year]]
    scalars = cal[cal.region_code.isna()].set_index("parameter").value
    regional = (
        cal[cal.region_code.notna()]
        .pivot_table(index="region_code", columns="parameter", values="value")
        .reindex(CODES)
    )
    hindcast = b.year == 2010
    b.external_migration_rate = regional["external migration rate"].to_numpy()
    b.external_migration_rate_early = (
        regional["external migration rate before break"].to_numpy()
        if hindcast
        else b.external_migration_rate.copy()
    )
    b.investment_elasticity = float(scalars["investment allocation elasticity"])
    b.employment_elasticity = float(scalars["employment elasticity"])
    if hindcast:
        b.tfp_growth = regional["TFP growth rate"].to_numpy()
        b.tfp_growth_early = regional["TFP growth rate before break"].to_numpy()
        b.resource_growth = regional["resource rent growth rate"].to_numpy()
        b.resource_growth_early = regional["resource rent growth rate before break"].to_numpy()
        b.lf_trend = regional["labour force participation trend"].to_numpy()
        b.emission_decline_rate = regional["emission intensity decline rate"].to_numpy()
        b.emission_decline_shift = float(scalars["emission decline shift before break"])
    else:
        # The forecast does not extrapolate regional trends (models/README.md, Calibration).
        b.emission_decline_rate = np.full(20, float(scalars["national emission decline rate"]))
    return b


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def _vec(x: np.ndarray, fmt: str = "{:.10g}") -> str:
    return ", ".join(fmt.format(float(v)) for v in x)


def _mat(m: np.ndarray) -> str:
    return ";\n\t".join(", ".join(f"{float(v):.10g}" for v in row) for row in m)


def eq(name: str, expr: str, units: str, doc: str) -> str:
    # '~' and '|' delimit Vensim fields: keep them out of the comment.
    doc = doc.replace("~", "about ").replace("|", "/")
    return f"{name} =\n\t{expr}\n\t~\t{units}\n\t~\t{doc}\n\t|\n"


def render_model(b: BaseInputs) -> str:
    """Vensim source for base inputs ``b``."""
    alpha = prior("capital share")
    res0 = b.resource_share * b.grp
    ynr0 = b.grp - res0
    tfp0 = ynr0 / (b.capital**alpha * b.employment ** (1 - alpha))
    lf0 = b.employment / (1 - b.unemployment)
    lf_ratio = lf0 / b.population
    spending0 = prior("local revenue rate") * b.grp
    g0 = (
        prior("public capital share of local spending")
        * spending0
        / prior("public capital depreciation rate")
    )
    # Investment location factor: makes the base-year allocation equal the observed shares.
    mpk = alpha * ynr0 / b.capital
    cost = prior("real interest rate") + prior("depreciation rate")
    raw = b.capital * (mpk / cost) ** b.investment_elasticity
    loc = b.investment_share / (raw / raw.sum())
    loc = loc / loc.mean()
    intensity0 = b.emissions / ((1 - prior("base capture fraction")) * b.grp)
    load0 = b.emissions * prior("pollution half life") / np.log(2.0)
    kind = "hindcast" if b.year == 2010 else "forecast"
    # Calibration windows (calibrate_kazakhstan.py): the hindcast's parameters come from
    # 2010-2018, the forecast's from the full period 2010-2021.
    last = 2018 if b.year == 2010 else 2021

    parts: list[str] = ["{UTF-8}\n"]
    p = parts.append
    p(
        f"Region:\n\t{', '.join(b.names)}\n\t~\t\n\t~\tThe 17 regions and 3 cities of republican "
        "significance in BNS's 2022 layout (issue #4 fixes the order).\n\t|\n"
    )
    p(
        "Destination <-> Region\n\t~\t\n\t~\tDestination of an inter-regional move (the same "
        "elements as Region).\n\t|\n"
    )

    p(
        "\n********************************************************\n\t.Policy levers\n"
        "********************************************************~\n\t\t|\n"
    )
    p(eq("policy start year", "2025", "Year", "Year the policy levers begin to ramp in."))
    p(
        eq(
            "policy ramp years",
            "3",
            "Year",
            "Years over which a lever ramps from 0 to full strength (no step jumps).",
        )
    )
    p(
        eq(
            "policy ramp progress",
            "MIN(1, MAX(0, (Time - policy start year) / policy ramp years))",
            "Dmnl",
            "Linear progress of the ramp, clipped to [0, 1].",
        )
    )
    p(
        eq(
            "policy ramp",
            "policy ramp progress * policy ramp progress * (3 - 2 * policy ramp progress)",
            "Dmnl",
            "Smoothstep ramp (continuous first derivative), so adaptive solvers see no kink.",
        )
    )
    p(
        eq(
            "equalization transfer intensity",
            "0",
            "Dmnl",
            "Equalisation grants (subventions/withdrawals, Budget Code general transfers): "
            "share lambda of the gap between expenditure need and own revenue that is closed.",
        )
    )
    p(
        eq(
            "special subsidy pool",
            "0",
            "bn KZT/Year",
            "Special (targeted) subsidies to lagging regions from the republican budget.",
        )
    )
    p(
        eq(
            "preferential loan rate discount[Region]",
            "0",
            "1/Year",
            "Preferential (subsidised) loans: interest-rate discount on investment credit.",
        )
    )
    p(
        eq(
            "investment incentive rate[Region]",
            "0",
            "Dmnl",
            "Investment incentives for backward regions: share of investment cost subsidised.",
        )
    )
    p(
        eq(
            "new industrial sites programme[Region]",
            "0",
            "bn KZT/Year",
            "New industrial sites / SEZ programme: public capital spending on industrial zones.",
        )
    )
    p(
        eq(
            "transport programme",
            "0",
            "bn KZT/Year",
            "Interregional transport infrastructure programme (national spending).",
        )
    )
    p(
        eq(
            "abatement investment[Region]",
            "0",
            "bn KZT/Year",
            "Environmental protection: public investment in treatment facilities (abatement).",
        )
    )
    p(
        eq(
            "clean technology rate",
            "0",
            "1/Year",
            "Cleaner-technology programme: extra yearly decline of emission intensity.",
        )
    )

    p(
        "\n********************************************************\n\t.Population\n"
        "********************************************************~\n\t\t|\n"
    )
    p(
        eq(
            "Population[Region]",
            "INTEG(Population Net Change[Region], initial population[Region])",
            "person",
            "Resident population (single stock; age structure not modelled).",
        )
    )
    p(
        eq(
            "initial population[Region]",
            _vec(b.population),
            "person",
            f"BNS average annual population {b.year} (harmonised_series.csv: population).",
        )
    )
    p(
        eq(
            "Births[Region]",
            "fertility multiplier * crude birth rate[Region] * EXP(birth rate trend * (Time - "
            "base year)) * Population[Region]",
            "person/Year",
            "Births.",
        )
    )
    p(eq("fertility multiplier", "1", "Dmnl", "Scales all birth rates (0 = no births test)."))
    trend_doc = (
        "Assumption [A]: slow fertility decline (BNS: CBR 20.57 per 1000 in 2022, 19.52 in "
        "2023; design notes s.4); the single-stock population has no ageing, so the trend "
        "stands in for it. 0 in the hindcast (CBR flat at ~22.5 per 1000 in 2010-2018)."
    )
    p(eq("birth rate trend", f"{b.birth_rate_trend:g}", "1/Year", trend_doc))
    p(
        eq(
            "crude birth rate[Region]",
            _vec(b.birth_rate),
            "1/Year",
            "Regional TFR 2022 x national CBR / TFR, scaled to the national CBR "
            f"({'2022' if b.year == 2022 else 'mean 2010-2018'}); see build_model.vital_rates.",
        )
    )
    p(
        eq(
            "Deaths[Region]",
            "crude death rate[Region] * pollution mortality multiplier[Region] * "
            "Population[Region]",
            "person/Year",
            "Deaths.",
        )
    )
    p(
        eq(
            "crude death rate[Region]",
            _vec(b.death_rate),
            "1/Year",
            "Registered deaths / population (2019) where BNS data exist, common rate elsewhere, "
            "scaled to the national CDR; see build_model.vital_rates.",
        )
    )
    p(
        eq(
            "pollution mortality multiplier[Region]",
            "MAX(0.5, 1 + pollution mortality sensitivity * (Pollution Index[Region] - 1))",
            "Dmnl",
            "MLP(PI) = 1 + m_p (PI - 1) (design notes D3).",
        )
    )
    p(
        eq(
            "pollution mortality sensitivity",
            str(prior("pollution mortality sensitivity")),
            "Dmnl",
            PRIORS["pollution mortality sensitivity"][2],
        )
    )
    p(
        eq(
            "External Net Migration[Region]",
            "(external migration rate before break[Region] + (external migration rate[Region] - "
            "external migration rate before break[Region]) * STEP(1, growth regime break year)) "
            "* Population[Region]",
            "person/Year",
            "International migration and statistical residual (calibrated).",
        )
    )
    p(
        eq(
            "external migration rate[Region]",
            _vec(b.external_migration_rate),
            "1/Year",
            f"After the regime break year: calibrated on 2015-{last} population growth "
            "(calibrate_kazakhstan.py).",
        )
    )
    p(
        eq(
            "external migration rate before break[Region]",
            _vec(b.external_migration_rate_early),
            "1/Year",
            "Before the regime break year: calibrated on 2010-2014 population growth. No "
            "effect in the forecast (equal to the rate after).",
        )
    )
    p(eq("Total Population", "SUM(Population[Region!])", "person", "National population."))

    p(
        "\n********************************************************\n\t.Migration\n"
        "********************************************************~\n\t\t|\n"
    )
    p(
        eq(
            "internal migration multiplier",
            "1",
            "Dmnl",
            "Scales gross inter-regional out-migration (0 = no migration test).",
        )
    )
    p(
        eq(
            "base out migration rate[Region]",
            _vec(b.out_migration_rate),
            "1/Year",
            "2022 inter-regional departures / 2022 population (internal_migration.csv).",
        )
    )
    p(
        eq(
            "Out Migration[Region]",
            "internal migration multiplier * base out migration rate[Region] * Population[Region]"
            " * EXP(-out migration push elasticity * (Perceived Attractiveness[Region] - base "
            "attractiveness[Region])) * (1 + transport out migration effect * Transport "
            "Improvement)",
            "person/Year",
            "Gross out-migration (design notes M4).",
        )
    )
    p(
        eq(
            "Attractiveness[Region]",
            "base attractiveness[Region] + income utility weight * (LN(Expected Income[Region] / "
            "National Expected Income) - reference income term[Region]) + public service utility "
            "weight * (LN(Public Services per Capita[Region] / National Public Services per "
            "Capita) - reference public service term[Region]) - pollution utility weight * "
            "(Pollution Index[Region] - 1)",
            "Dmnl",
            "Log-utility of living in a region (design notes M2), written relative to the "
            "initial state, where it equals base attractiveness (the pollution index is 1 "
            "there).",
        )
    )
    p(
        eq(
            "base attractiveness[Region]",
            _vec(base_attractiveness(b)),
            "Dmnl",
            f"Attractiveness of the initial state: destination fixed effect xi (solved so that "
            "the logit reproduces 2022 arrivals exactly, build_model.calibrate_attractiveness) "
            f"plus the {b.year} income and service terms at the prior weights. Departures equal "
            "the base out migration rate at this attractiveness.",
        )
    )
    for name, expr, what in (
        (
            "reference income term",
            "INITIAL(LN(Expected Income[Region] / National Expected Income))",
            "income",
        ),
        (
            "reference public service term",
            "INITIAL(LN(Public Services per Capita[Region] / National Public Services per Capita))",
            "public-service",
        ),
    ):
        p(eq(f"{name}[Region]", expr, "Dmnl", f"The {what} log-ratio of the initial state."))
    p(
        eq(
            "Perceived Attractiveness[Region]",
            "INTEG((Attractiveness[Region] - Perceived Attractiveness[Region]) / attractiveness "
            "perception time, Attractiveness[Region])",
            "Dmnl",
            "First-order information delay of attractiveness (design notes M3).",
        )
    )
    p(
        eq(
            "Expected Income[Region]",
            "Income per Capita[Region] * (1 - Unemployment Rate[Region])",
            "thousand KZT/(person*Year)",
            "Harris-Todaro expected income (design notes M1).",
        )
    )
    p(
        eq(
            "National Expected Income",
            "SUM(Expected Income[Region!] * Population[Region!]) / Total Population",
            "thousand KZT/(person*Year)",
            "Population-weighted mean expected income.",
        )
    )
    p(
        eq(
            "distance[Region, Destination]",
            _mat(b.distance),
            "km",
            "Great-circle distance between administrative centres (region_centres.csv); the "
            "diagonal is unused.",
        )
    )
    p(
        eq(
            "off diagonal[Region, Destination]",
            _mat(1.0 - np.eye(20)),
            "Dmnl",
            "1 for a move to another region, 0 on the diagonal.",
        )
    )
    p(
        eq(
            "Effective Distance[Region, Destination]",
            "distance[Region, Destination] * (1 - transport distance effect * Transport "
            "Improvement)",
            "km",
            "Distance net of transport improvements (design notes M7).",
        )
    )
    p(
        eq(
            "Destination Weight[Region, Destination]",
            "off diagonal[Region, Destination] * EXP(Perceived Attractiveness[Destination]) * "
            "Population[Destination] * Effective Distance[Region, Destination] ^ (-distance "
            "elasticity)",
            # person * km ^ (-distance elasticity), with the elasticity at its prior, 1.
            "person/km",
            "Logit/gravity weight of destination j for origin i (M6).",
        )
    )
    p(
        eq(
            "Migration Flow[Region, Destination]",
            "Out Migration[Region] * Destination Weight[Region, Destination] / "
            "SUM(Destination Weight[Region, Destination!])",
            "person/Year",
            "Origin-destination flow matrix M_ij (M8).",
        )
    )
    p(
        eq(
            "Arrivals[Destination]",
            "SUM(Migration Flow[Region!, Destination])",
            "person/Year",
            "Inter-regional arrivals by destination.",
        )
    )
    p(
        eq(
            "In Migration[Region]",
            "Arrivals[Region]",
            "person/Year",
            "Inter-regional arrivals by region.",
        )
    )
    p(
        eq(
            "Net Migration[Region]",
            "In Migration[Region] - Out Migration[Region]",
            "person/Year",
            "Net inter-regional migration; sums to zero by construction.",
        )
    )
    p(
        eq(
            "Net Migration Sum",
            "SUM(Net Migration[Region!])",
            "person/Year",
            "Conservation check: identically zero up to rounding.",
        )
    )
    p(
        eq(
            "Gross Internal Migration",
            "SUM(Out Migration[Region!])",
            "person/Year",
            "Total inter-regional moves.",
        )
    )

    p(
        "\n********************************************************\n\t.Production and capital\n"
        "********************************************************~\n\t\t|\n"
    )
    p(eq("base year", str(b.year), "Year", "Year of the initial values."))
    p(
        eq(
            "GRP[Region]",
            "Nonresource GRP[Region] + Resource Rents[Region]",
            "bn KZT/Year",
            "Gross regional product, constant 2022 prices (Y3).",
        )
    )
    p(
        eq(
            "Nonresource GRP[Region]",
            "TFP[Region] * Capital[Region] ^ capital share * "
            "Employment[Region] ^ (1 - capital share)",
            "bn KZT/Year",
            "Cobb-Douglas non-resource GRP (Y2).",
        )
    )
    p(
        eq(
            "TFP[Region]",
            "initial TFP[Region] * EXP(Growth Regime Time Factor[Region]) * "
            "(Public Infrastructure[Region] / initial public infrastructure[Region]) ^ public "
            "capital elasticity * (1 + industrial site TFP effect * Industrial Site Intensity"
            "[Region])",
            "bn KZT/(Year*bn KZT^0.4*person^0.6)",
            "Total factor productivity (Y1).",
        )
    )
    p(
        eq(
            "initial TFP[Region]",
            _vec(tfp0),
            "bn KZT/(Year*bn KZT^0.4*person^0.6)",
            f"Calibrated so that {b.year} non-resource GRP is reproduced exactly.",
        )
    )
    p(
        eq(
            "TFP growth rate[Region]",
            _vec(b.tfp_growth),
            "1/Year",
            "Growth after the regime break year. Design-notes prior 1%/yr (World Bank: "
            "0.4-1.1%/yr in 2015-18) in the forecast; calibrated on 2015-2018 in the hindcast.",
        )
    )
    p(
        eq(
            "TFP growth rate before break[Region]",
            _vec(b.tfp_growth_early),
            "1/Year",
            "Growth before the regime break year; calibrated on 2010-2014 in the hindcast. No "
            "effect in the forecast, which starts after the break.",
        )
    )
    p(
        eq(
            "growth regime break year",
            str(TFP_BREAK_YEAR if b.year < TFP_BREAK_YEAR else b.year),
            "Year",
            f"End of the fast-growth regime: {TFP_BREAK_YEAR}, the oil-price collapse (World "
            "Bank via design notes s.4: productivity growth about 2.3%/yr before 2014, "
            "0.4-1.1%/yr in 2015-18). Fixed from that source, not fitted. Equal to the base "
            "year in the forecast.",
        )
    )
    p(
        eq(
            "Growth Regime Time Factor[Region]",
            "TFP growth rate before break[Region] * (MIN(Time, growth regime break year) - base "
            "year) + TFP growth rate[Region] * MAX(Time - growth regime break year, 0)",
            "Dmnl",
            "Cumulative log growth of TFP: piecewise-linear in time with a kink, not a jump, at "
            "the break year.",
        )
    )
    p(
        eq(
            "Resource Rents[Region]",
            "initial resource rents[Region] * EXP(resource rent growth rate before break[Region] "
            "* (MIN(Time, growth regime break year) - base year) + resource rent growth rate"
            "[Region] * MAX(Time - growth regime break year, 0))",
            "bn KZT/Year",
            "Exogenous extractive GVA R_i(t) (design principle 3).",
        )
    )
    p(
        eq(
            "initial resource rents[Region]",
            _vec(res0),
            "bn KZT/Year",
            "Resource share (resource_rent_shares.csv, assumption) x base-year real GRP.",
        )
    )
    p(
        eq(
            "resource rent growth rate[Region]",
            _vec(b.resource_growth),
            "1/Year",
            "Growth after the regime break year. 0 = flat real rents (forecast scenario); "
            "calibrated on 2015-2018 in the hindcast (= TFP growth rate).",
        )
    )
    p(
        eq(
            "resource rent growth rate before break[Region]",
            _vec(b.resource_growth_early),
            "1/Year",
            "Growth before the regime break year; calibrated on 2010-2014 in the hindcast "
            "(= TFP growth rate before break). No effect in the forecast.",
        )
    )
    p(eq("GDP", "SUM(GRP[Region!])", "bn KZT/Year", "National GDP, constant 2022 prices."))
    p(
        eq(
            "GRP per Capita[Region]",
            "GRP[Region] / Population[Region] * 1e+06",
            "thousand KZT/(person*Year)",
            "GRP per capita.",
        )
    )
    p(
        eq(
            "Capital[Region]",
            "INTEG(Private Investment[Region] + Industrial Site Investment[Region] - "
            "Depreciation[Region], initial capital[Region])",
            "bn KZT",
            "Private non-resource productive capital, constant 2022 prices (K6).",
        )
    )
    p(
        eq(
            "initial capital[Region]",
            _vec(b.capital),
            "bn KZT",
            "Perpetual inventory from non-resource real investment 2010-base year "
            "(build_model.perpetual_inventory).",
        )
    )
    p(
        eq(
            "Depreciation[Region]",
            "depreciation rate * Capital[Region]",
            "bn KZT/Year",
            "Depreciation.",
        )
    )
    p(
        eq(
            "investment rate",
            f"{b.investment_rate:.6g}",
            "Dmnl",
            "Non-resource investment / GDP, mean of 3 base-period years (investment_real).",
        )
    )
    p(
        eq(
            "National Investment Pool",
            "investment rate * GDP",
            "bn KZT/Year",
            "Private investment pool allocated across regions (K1).",
        )
    )
    p(
        eq(
            "Marginal Product of Capital[Region]",
            "capital share * Nonresource GRP[Region] / Capital[Region]",
            "1/Year",
            "MPK (K3).",
        )
    )
    p(
        eq(
            "User Cost of Capital[Region]",
            "(real interest rate - preferential loan rate discount[Region] * policy ramp + "
            "depreciation rate) * (1 - investment incentive rate[Region] * policy ramp)",
            "1/Year",
            "User cost with loan and incentive levers (K2).",
        )
    )
    p(
        eq(
            "Investment Attractiveness[Region]",
            "investment location factor[Region] * Capital[Region] * (Marginal Product of Capital"
            "[Region] / User Cost of Capital[Region]) ^ investment allocation elasticity",
            "bn KZT",
            "Allocation weight (K4).",
        )
    )
    p(
        eq(
            "investment allocation elasticity",
            f"{b.investment_elasticity:.6g}",
            "Dmnl",
            f"theta_I: prior 2 (design notes s.4); calibrated on 2011-{last} regional "
            "investment shares (calibrate_kazakhstan.py).",
        )
    )
    p(
        eq(
            "investment location factor[Region]",
            _vec(loc),
            "Dmnl",
            "Calibrated so base-year allocation equals observed non-resource investment shares.",
        )
    )
    p(
        eq(
            "Investment Share[Region]",
            "Investment Attractiveness[Region] / SUM(Investment Attractiveness[Region!])",
            "Dmnl",
            "Regional share of the investment pool.",
        )
    )
    p(
        eq(
            "Private Investment[Region]",
            "National Investment Pool * Investment Share[Region]",
            "bn KZT/Year",
            "Private investment (K5).",
        )
    )
    p(
        eq(
            "Industrial Site Investment[Region]",
            "new industrial sites programme[Region] * policy ramp",
            "bn KZT/Year",
            "Public capital in new industrial sites (Iprog_i).",
        )
    )
    p(
        eq(
            "Industrial Site Intensity[Region]",
            "100 * Industrial Site Investment[Region] / initial GRP[Region]",
            "Dmnl",
            "Industrial-site spending in percent of base-year GRP (SEZ_i); base-year GRP avoids "
            "an algebraic loop through TFP.",
        )
    )
    p(
        eq(
            "initial GRP[Region]",
            _vec(b.grp),
            "bn KZT/Year",
            f"Real GRP {b.year}, constant 2022 prices (harmonised_series.csv: grp_real).",
        )
    )
    p(
        eq(
            "Public Infrastructure[Region]",
            "INTEG(public capital share of local spending * Local Budget Spending[Region] + "
            "Transport Investment[Region] - public capital depreciation rate * Public "
            "Infrastructure[Region], initial public infrastructure[Region])",
            "bn KZT",
            "Public infrastructure capital (K7).",
        )
    )
    p(
        eq(
            "initial public infrastructure[Region]",
            _vec(g0),
            "bn KZT",
            "Steady state kappa_G * local spending / delta_G at the base year.",
        )
    )
    p(
        eq(
            "Transport Investment[Region]",
            "transport programme * policy ramp * Population[Region] / Total Population",
            "bn KZT/Year",
            "Transport programme allocated to regions by population.",
        )
    )
    p(
        eq(
            "Transport Network",
            "INTEG(transport programme * policy ramp - public capital depreciation rate * "
            "Transport Network, 0)",
            "bn KZT",
            "Interregional transport capital added by the programme.",
        )
    )
    p(
        eq(
            "Transport Improvement",
            "Transport Network / (Transport Network + transport network half effect)",
            "Dmnl",
            "0 = today's network; tends to 1.",
        )
    )

    p(
        "\n********************************************************\n\t.Labour market\n"
        "********************************************************~\n\t\t|\n"
    )
    p(
        eq(
            "Labour Force[Region]",
            "labour force ratio[Region] * Population[Region] * EXP(labour force participation "
            "trend[Region] * (Time - base year))",
            "person",
            "Labour force (L1, per capita).",
        )
    )
    p(
        eq(
            "labour force ratio[Region]",
            _vec(lf_ratio),
            "Dmnl",
            "Base-year (employment / (1 - unemployment rate)) / population.",
        )
    )
    p(
        eq(
            "labour force participation trend[Region]",
            _vec(b.lf_trend),
            "1/Year",
            "0 in the forecast; calibrated on 2010-2018 employment in the hindcast.",
        )
    )
    p(
        eq(
            "Capital per Job[Region]",
            "initial capital per job[Region] * EXP(capital deepening rate * (Time - base year))",
            "bn KZT/person",
            "Capital per job, rising with capital deepening (L2).",
        )
    )
    p(
        eq(
            "initial capital per job[Region]",
            _vec(b.capital / b.employment),
            "bn KZT/person",
            "Base-year capital / employment, so jobs = employment initially.",
        )
    )
    p(
        eq(
            "capital deepening rate",
            f"{b.capital_deepening_rate:.6g}",
            "1/Year",
            PRIORS["capital deepening rate"][2],
        )
    )
    p(
        eq(
            "Jobs[Region]",
            "Capital[Region] / Capital per Job[Region]",
            "person",
            "Jobs offered by the capital stock (L3).",
        )
    )
    p(
        eq(
            "base employment rate[Region]",
            _vec(1 - b.unemployment),
            "Dmnl",
            "1 - base-year unemployment rate (harmonised_series.csv).",
        )
    )
    p(
        eq(
            "employment rate scale[Region]",
            "base employment rate[Region] * max employment rate / (max employment rate ^ "
            "employment rate curvature - base employment rate[Region] ^ employment rate "
            "curvature) ^ (1 / employment rate curvature)",
            "Dmnl",
            "Inverts the smooth cap so that the base year is an equilibrium.",
        )
    )
    p(
        eq(
            "Raw Employment Rate[Region]",
            "employment rate scale[Region] * (Jobs[Region] / Labour Force[Region] / base "
            "employment rate[Region]) ^ employment elasticity",
            "Dmnl",
            "Employment rate implied by jobs per worker.",
        )
    )
    p(
        eq(
            "Desired Employment[Region]",
            "Labour Force[Region] * Raw Employment Rate[Region] / (1 + (Raw Employment Rate"
            "[Region] / max employment rate) ^ employment rate curvature) ^ (1 / employment rate "
            "curvature)",
            "person",
            "Smooth minimum of job-driven employment and the labour "
            "force net of frictional unemployment (L4).",
        )
    )
    p(
        eq(
            "Employment[Region]",
            "INTEG((Desired Employment[Region] - Employment[Region]) / employment adjustment time"
            " + Employment Coflow[Region], initial employment[Region])",
            "person",
            "Employed persons (L5).",
        )
    )
    p(
        eq(
            "initial employment[Region]",
            _vec(b.employment),
            "person",
            f"BNS LFS employment {b.year} (harmonised_series.csv).",
        )
    )
    p(
        eq(
            "Employment Coflow[Region]",
            "Employment[Region] * (Population Net Change[Region] / Population[Region] + labour "
            "force participation trend[Region])",
            "person/Year",
            "Employment moves with the labour force (births, deaths, migration, participation), so"
            " E/LF changes only through jobs. Generalises the out-migration co-flow of design "
            "notes L5 and section 8, which left a growth-lag bias in fast-growing regions.",
        )
    )
    p(
        eq(
            "Population Net Change[Region]",
            "Births[Region] - Deaths[Region] + Net Migration[Region] + External Net Migration"
            "[Region]",
            "person/Year",
            "Net flow into Population.",
        )
    )
    p(
        eq(
            "Unemployment Rate[Region]",
            "1 - Employment[Region] / Labour Force[Region]",
            "Dmnl",
            "Unemployment rate (L6).",
        )
    )
    p(
        eq(
            "National Unemployment Rate",
            "1 - SUM(Employment[Region!]) / SUM(Labour Force[Region!])",
            "Dmnl",
            "National unemployment rate.",
        )
    )

    p(
        "\n********************************************************\n\t.Budget and income\n"
        "********************************************************~\n\t\t|\n"
    )
    p(
        eq(
            "Own Revenue[Region]",
            "local revenue rate * GRP[Region]",
            "bn KZT/Year",
            "Local own revenue (F1).",
        )
    )
    p(
        eq(
            "Expenditure Need[Region]",
            "local revenue rate * GDP * Population[Region] / Total Population",
            "bn KZT/Year",
            "Standard per-capita need; national need = national own revenue (F3).",
        )
    )
    p(
        eq(
            "Equalization Intensity",
            "equalization transfer intensity * policy ramp",
            "Dmnl",
            "Ramped equalisation lever.",
        )
    )
    p(
        eq(
            "Subvention[Region]",
            "Equalization Intensity * MAX(Expenditure Need[Region] - Own Revenue[Region], 0)",
            "bn KZT/Year",
            "Equalisation grant to recipient regions (F4).",
        )
    )
    p(
        eq(
            "Budget Withdrawal[Region]",
            "Equalization Intensity * MAX(Own Revenue[Region] - Expenditure Need[Region], 0)",
            "bn KZT/Year",
            "Withdrawal from donor regions (F5).",
        )
    )
    p(
        eq(
            "Market Income per Capita[Region]",
            "(household share of nonresource GRP * Nonresource GRP[Region] + household share of "
            "resource rents * Resource Rents[Region]) / Population[Region] * 1e+06",
            "thousand KZT/(person*Year)",
            "Household income before local public spending.",
        )
    )
    p(
        eq(
            "National Market Income per Capita",
            "SUM(Market Income per Capita[Region!] * Population[Region!]) / Total Population",
            "thousand KZT/(person*Year)",
            "Population-weighted mean market income.",
        )
    )
    p(
        eq(
            "Income Gap[Region]",
            "1 - Market Income per Capita[Region] / (special subsidy threshold * National Market "
            "Income per Capita)",
            "Dmnl",
            "Relative shortfall of market income (F6).",
        )
    )
    p(
        eq(
            "Lag Weight[Region]",
            "0.5 * (Income Gap[Region] + SQRT(Income Gap[Region] ^ 2 + lag smoothing ^ 2))",
            "Dmnl",
            "Smooth max(gap, 0) (design notes 3.0 smax): always positive, so identical "
            "regions share the pool equally and the allocation has no kink.",
        )
    )
    p(
        eq(
            "lag smoothing",
            "0.02",
            "Dmnl",
            "Width of the smooth maximum in the lag weight (assumption).",
        )
    )
    p(
        eq(
            "Special Subsidy[Region]",
            "special subsidy pool * policy ramp * Lag Weight[Region] / SUM(Lag Weight[Region!])",
            "bn KZT/Year",
            "Targeted subsidies to lagging regions (F6).",
        )
    )
    p(
        eq(
            "Local Budget Spending[Region]",
            "Own Revenue[Region] + Subvention[Region] - Budget Withdrawal[Region] + Special "
            "Subsidy[Region]",
            "bn KZT/Year",
            "Balanced local budget (F7).",
        )
    )
    p(
        eq(
            "Public Services per Capita[Region]",
            "(1 - public capital share of local spending) * Local Budget Spending[Region] / "
            "Population[Region] * 1e+06",
            "thousand KZT/(person*Year)",
            "Current public spending per capita (F8).",
        )
    )
    p(
        eq(
            "National Public Services per Capita",
            "SUM(Public Services per Capita[Region!] * Population[Region!]) / Total Population",
            "thousand KZT/(person*Year)",
            "Population-weighted mean.",
        )
    )
    p(
        eq(
            "Income per Capita[Region]",
            "Market Income per Capita[Region] + household share of local spending * Local Budget "
            "Spending[Region] / Population[Region] * 1e+06",
            "thousand KZT/(person*Year)",
            "Household money income per capita (H1).",
        )
    )
    p(
        eq(
            "National Income per Capita",
            "SUM(Income per Capita[Region!] * Population[Region!]) / Total Population",
            "thousand KZT/(person*Year)",
            "Population-weighted mean income.",
        )
    )
    p(
        eq(
            "National Revenue",
            "national tax rate * GDP",
            "bn KZT/Year",
            "Republican budget revenue (F2).",
        )
    )
    p(
        eq(
            "Base National Spending",
            "national tax rate * GDP",
            "bn KZT/Year",
            "Republican spending other than the levers (balanced without levers).",
        )
    )
    p(
        eq(
            "Loan Interest Subsidy[Region]",
            "preferential loan rate discount[Region] * policy ramp * Private Investment[Region] * "
            "subsidised loan term",
            "bn KZT/Year",
            "Budget cost of preferential loans.",
        )
    )
    p(
        eq(
            "Investment Incentive Subsidy[Region]",
            "investment incentive rate[Region] * policy ramp * Private Investment[Region]",
            "bn KZT/Year",
            "Budget cost of investment incentives.",
        )
    )
    p(
        eq(
            "Programme Spending",
            "SUM(Special Subsidy[Region!]) + transport programme * policy ramp + SUM(abatement "
            "investment[Region!]) * policy ramp + SUM(Industrial Site Investment[Region!]) + "
            "SUM(Loan Interest Subsidy[Region!]) + SUM(Investment Incentive Subsidy[Region!])",
            "bn KZT/Year",
            "Spending on the policy levers.",
        )
    )
    p(
        eq(
            "National Budget Balance",
            "National Revenue + SUM(Budget Withdrawal[Region!]) - SUM(Subvention[Region!]) - "
            "Base National Spending - Programme Spending",
            "bn KZT/Year",
            "Surplus (+) or deficit (-) of the republican budget (F9).",
        )
    )
    p(
        eq(
            "National Fund",
            "INTEG(National Budget Balance, 0)",
            "bn KZT",
            "Change in the National Fund since the base year: it finances deficits (F10).",
        )
    )

    p(
        "\n********************************************************\n\t.Environment\n"
        "********************************************************~\n\t\t|\n"
    )
    p(
        eq(
            "Emission Intensity[Region]",
            "INTEG(-(Autonomous Intensity Decline[Region] + clean technology rate * policy ramp) "
            "* Emission Intensity[Region], initial emission intensity[Region])",
            "tonnes/bn KZT",
            "Gross pollutant generation per unit of GRP, before capture (V1).",
        )
    )
    p(
        eq(
            "initial emission intensity[Region]",
            _vec(intensity0),
            "tonnes/bn KZT",
            f"{b.year} emissions / ((1 - base capture fraction) x real GRP).",
        )
    )
    p(
        eq(
            "emission intensity decline rate[Region]",
            _vec(b.emission_decline_rate),
            "1/Year",
            "Autonomous decline after the regime break year. Hindcast: one rate per region "
            "fitted on 2010-2018 together with the national shift before the break. Forecast: "
            "the emissions-weighted national rate of the 2010-2021 fit, for every region "
            "(calibrate_kazakhstan.py).",
        )
    )
    p(
        eq(
            "emission decline shift before break",
            f"{b.emission_decline_shift:.10g}",
            "1/Year",
            "Extra autonomous decline before the regime break year, the same in every region: "
            "fitted on the national total in the hindcast (regional pre-break rates would fit "
            "noise). 0 in the forecast, which starts after the break.",
        )
    )
    p(
        eq(
            "Autonomous Intensity Decline[Region]",
            "emission intensity decline rate[Region] + emission decline shift before break * (1 "
            "- STEP(1, growth regime break year))",
            "1/Year",
            "The decline rate switches with the growth regime (the fast pre-2014 decline was "
            "largely fast non-industrial growth). A STEP in a rate, not in a stock; the "
            "integrators stop at it. Zero height in the forecast.",
        )
    )
    p(
        eq(
            "Abatement Capital[Region]",
            "INTEG(abatement investment[Region] * policy ramp - abatement depreciation rate * "
            "Abatement Capital[Region], 0)",
            "bn KZT",
            "Treatment facilities added by the abatement lever (K8).",
        )
    )
    p(
        eq(
            "abatement capital scale[Region]",
            f"{prior('abatement capital scale factor'):g} * initial GRP[Region] * 1",
            "bn KZT",
            "Abatement capital that closes 63% of the capture gap (1% of base GRP x 1 year).",
        )
    )
    p(
        eq(
            "Capture Fraction[Region]",
            "max capture fraction - (max capture fraction - base capture fraction) * "
            "EXP(-Abatement Capital[Region] / abatement capital scale[Region])",
            "Dmnl",
            "Captured share of generated pollutants (V3).",
        )
    )
    p(
        eq(
            "Emissions[Region]",
            "Emission Intensity[Region] * GRP[Region] * (1 - Capture Fraction[Region])",
            "tonnes/Year",
            "Stationary-source emissions (V4).",
        )
    )
    p(eq("Total Emissions", "SUM(Emissions[Region!])", "tonnes/Year", "National emissions."))
    p(
        eq(
            "Environmental Load[Region]",
            "INTEG(Emissions[Region] - Assimilation[Region], initial environmental load[Region])",
            "tonnes",
            "Pollutant load (V5).",
        )
    )
    p(
        eq(
            "initial environmental load[Region]",
            _vec(load0),
            "tonnes",
            "Steady state emissions x half-life / ln 2.",
        )
    )
    p(
        eq(
            "Assimilation[Region]",
            "Environmental Load[Region] * LN(2) / pollution half life",
            "tonnes/Year",
            "First-order decay with half-life t1/2.",
        )
    )
    p(
        eq(
            "Pollution Index[Region]",
            "Environmental Load[Region] / initial environmental load[Region]",
            "Dmnl",
            "Load relative to the base year (V6).",
        )
    )

    p(
        "\n********************************************************\n\t.Disparity indicators\n"
        "********************************************************~\n\t\t|\n"
    )
    p(
        eq(
            "Williamson Index",
            "SQRT(SUM(Population[Region!] * (Income per Capita[Region!] - National Income per "
            "Capita) ^ 2) / Total Population) / National Income per Capita",
            "Dmnl",
            "Population-weighted CV of income per capita (Williamson 1965, weighted mean).",
        )
    )
    p(
        eq(
            "Theil Index",
            "SUM(Population[Region!] / Total Population * Income per Capita[Region!] / National "
            "Income per Capita * LN(Income per Capita[Region!] / National Income per Capita))",
            "Dmnl",
            "Population-weighted Theil T of income per capita.",
        )
    )
    p(
        eq(
            "National GRP per Capita",
            "GDP / Total Population * 1e+06",
            "thousand KZT/(person*Year)",
            "GDP per capita.",
        )
    )
    p(
        eq(
            "Williamson Index GRP",
            "SQRT(SUM(Population[Region!] * (GRP per Capita[Region!] - National GRP per Capita) ^ "
            "2) / Total Population) / National GRP per Capita",
            "Dmnl",
            "Population-weighted CV of GRP per capita.",
        )
    )

    p(
        "\n********************************************************\n\t.Parameters\n"
        "********************************************************~\n\t\t|\n"
    )
    emitted = {"pollution mortality sensitivity"}
    skip = {
        "TFP growth prior",
        "harberger growth rate",
        "emission intensity decline rate",
        "abatement capital scale factor",
        "investment allocation elasticity",
        "employment elasticity",
        "capital deepening rate",
    }
    p(
        eq(
            "employment elasticity",
            f"{b.employment_elasticity:.6g}",
            "Dmnl",
            "Response of the employment rate to jobs per worker. Prior 0.5 [A]; calibrated on "
            f"the regional unemployment rates 2010-{last} (deviations from each year's mean "
            "across regions; calibrate_kazakhstan.py). BNS reports them within a few tenths "
            "of a point of each other, so employment follows the labour force closely "
            "(consistent with the LFS counting the self-employed as employed).",
        )
    )
    for name, (value, units, src) in PRIORS.items():
        if name in emitted or name in skip:
            continue
        p(eq(name, f"{value:g}", units, src))

    p(
        "\n********************************************************\n\t.Control\n"
        "********************************************************~\n\t\t|\n"
    )
    p(eq("INITIAL TIME", str(b.year), "Year", f"Start of the {kind}."))
    p(eq("FINAL TIME", str(b.final), "Year", f"End of the {kind}."))
    p(eq("TIME STEP", "0.25", "Year [0,?]", "Euler step for PySD."))
    p(eq("SAVEPER", "1", "Year [0,?]", "Output interval."))
    p(
        "\\\\\\---/// Sketch information - do not modify anything except names\nV300  Do not put "
        "anything below this section - it will be ignored\n"
    )
    return "".join(parts)


_XI_CACHE: dict[str, np.ndarray] = {}


def calibrated_xi() -> np.ndarray:
    """Attractiveness fixed effects, always from the 2022 base (the only OD data year)."""
    if "xi" not in _XI_CACHE:
        b22 = base_inputs(2022)
        arrivals = series("migration_arrivals")[2022].to_numpy()
        _XI_CACHE["xi"] = calibrate_attractiveness(b22, arrivals)
    return _XI_CACHE["xi"]


def build(out_dir: Path = HERE) -> list[Path]:
    """Write kazakhstan_regions.mdl (2022-2050) and kazakhstan_regions_hindcast.mdl (2010-2022)."""
    paths = []
    for base, fname in (
        (2022, "kazakhstan_regions.mdl"),
        (2010, "kazakhstan_regions_hindcast.mdl"),
    ):
        b = load_calibration(base_inputs(base))
        path = out_dir / fname
        path.write_text(render_model(b), encoding="utf-8")
        paths.append(path)
    return paths


def build_symmetric(path: Path, final: int = 2030) -> Path:
    """Write a family-member test model: 20 identical regions at equal distances.

    Every region gets the national-average 2022 values, so all disparity indices must be 0 and
    net migration must vanish (design notes 6.1, test 4).
    """
    b = base_inputs(2022)
    n = 20
    w = b.population / b.population.sum()
    same = {}
    for attr in ("population", "employment", "grp", "capital", "emissions"):
        same[attr] = np.full(n, getattr(b, attr).sum() / n)
    for attr in (
        "unemployment",
        "resource_share",
        "birth_rate",
        "death_rate",
        "out_migration_rate",
    ):
        same[attr] = np.full(n, (getattr(b, attr) * w).sum())
    b.__dict__.update(same)
    b.investment_share = np.full(n, 1.0 / n)
    b.distance = np.full((n, n), 500.0)
    b.final = final
    b.symmetric = True
    _XI_CACHE.setdefault("xi", calibrated_xi())
    saved = _XI_CACHE["xi"]
    _XI_CACHE["xi"] = np.zeros(n)
    try:
        path.write_text(render_model(b), encoding="utf-8")
    finally:
        _XI_CACHE["xi"] = saved
    return path


def _summarise_value(expr: str) -> str | None:
    """'20 values: min .. max' for a numeric array, the number for a scalar, else None."""
    text = expr.replace(";", ",").replace("\n", " ").replace("\t", " ")
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return None
    if len(values) == 1:
        return f"{values[0]:.6g}"
    if len(set(values)) == 1:
        return f"{len(values)} x {values[0]:.6g}"
    return f"{len(values)} values, {min(values):.4g} .. {max(values):.4g}"


def equation_table(mdl_text: str) -> str:
    """Markdown listing of every variable of a generated .mdl: kind, equation/value, units."""
    lines: list[str] = []
    section = ""
    for block in mdl_text.split("|"):
        block = block.strip()
        if block.startswith("*"):
            section = block.split("\n")[1].strip().lstrip(".")
            lines += [
                "",
                f"#### {section}",
                "",
                "| variable | kind | equation or value | units | source / comment |",
                "|---|---|---|---|---|",
            ]
            continue
        if "=" not in block or "~" not in block or block.startswith(("{UTF", "\\")):
            continue
        head, units, doc = (part.strip() for part in block.split("~")[:3])
        name, expr = (x.strip() for x in head.split("=", 1))
        if name.startswith(("Region", "Destination")) or "<->" in head:
            continue
        expr = " ".join(expr.split())
        value = _summarise_value(expr)
        if expr.startswith("INTEG"):
            kind = "stock"
        elif section == "Policy levers" and value is not None:
            kind = "lever"
        elif value is not None:
            kind = "constant"
        else:
            kind = "auxiliary"
        shown = value if value is not None else f"`{expr}`"
        doc = " ".join(doc.split()).replace("|", "/")
        lines.append(f"| {name} | {kind} | {shown} | {units} | {doc} |")
    return "\n".join(lines).strip() + "\n"


def update_readme(marker: str, body: str, readme: Path = HERE / "README.md") -> None:
    """Replace the text between ``<!-- BEGIN marker -->`` and ``<!-- END marker -->``."""
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    begin, end = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{body}{end}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--refresh-data",
        action="store_true",
        help="re-derive models/data from the source CSVs first",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="folder with the BNS source CSVs (shared/data/kazakhstan)",
    )
    args = parser.parse_args()
    if args.refresh_data or not (DATA / "harmonised_series.csv").exists():
        prepare_data(args.source)
    for path in build():
        print(f"wrote {path}")
    update_readme("EQUATIONS", equation_table((HERE / "kazakhstan_regions.mdl").read_text()))


if __name__ == "__main__":
    main()
