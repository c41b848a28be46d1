"""Airports used by the traffic generator (ICAO code -> name, latitude, longitude, elevation).

Reference points from the national AIPs (rounded to about 100 m); public facts.
"""

from __future__ import annotations

AIRPORTS: dict[str, tuple[str, float, float, float]] = {
    # code: (name, lat_deg, lon_deg, elevation_m)
    "RJTT": ("Tokyo Haneda", 35.5523, 139.7798, 6.0),
    "RJAA": ("Tokyo Narita", 35.7647, 140.3864, 43.0),
    "RJBB": ("Osaka Kansai", 34.4273, 135.2440, 8.0),
    "RJOO": ("Osaka Itami", 34.7855, 135.4382, 15.0),
    "RJGG": ("Nagoya Chubu", 34.8584, 136.8054, 4.0),
    "RJFF": ("Fukuoka", 33.5859, 130.4510, 9.0),
    "RJFK": ("Kagoshima", 31.8034, 130.7194, 276.0),
    "RJOA": ("Hiroshima", 34.4361, 132.9194, 331.0),
    "RJNK": ("Komatsu", 36.3946, 136.4065, 11.0),
    "RJSN": ("Niigata", 37.9559, 139.1210, 9.0),
    "RJSS": ("Sendai", 38.1397, 140.9170, 2.0),
    "RJCC": ("Sapporo New Chitose", 42.7752, 141.6923, 25.0),
    "RJCH": ("Hakodate", 41.7700, 140.8220, 35.0),
    "RJKA": ("Amami", 28.4306, 129.7125, 8.0),
    "ROAH": ("Naha", 26.1958, 127.6459, 4.0),
    "ROMY": ("Miyako", 24.7828, 125.2950, 50.0),
    "RKSI": ("Seoul Incheon", 37.4602, 126.4407, 7.0),
    "RKSS": ("Seoul Gimpo", 37.5583, 126.7906, 18.0),
    "RKPK": ("Busan Gimhae", 35.1795, 128.9382, 2.0),
    "RKPC": ("Jeju", 33.5113, 126.4930, 36.0),
    "RCTP": ("Taipei Taoyuan", 25.0777, 121.2328, 33.0),
    "RCKH": ("Kaohsiung", 22.5771, 120.3500, 9.0),
    "ZSPD": ("Shanghai Pudong", 31.1443, 121.8083, 4.0),
    "ZSSS": ("Shanghai Hongqiao", 31.1979, 121.3363, 3.0),
    "VHHH": ("Hong Kong", 22.3080, 113.9185, 9.0),
    "RPLL": ("Manila", 14.5086, 121.0194, 23.0),
    "PGUM": ("Guam", 13.4834, 144.7960, 91.0),
    "PGSN": ("Saipan", 15.1190, 145.7290, 65.0),
    "UHWW": ("Vladivostok", 43.3990, 132.1480, 14.0),
    "UHSS": ("Yuzhno-Sakhalinsk", 46.8887, 142.7175, 18.0),
    "LFPG": ("Paris Charles de Gaulle", 49.0097, 2.5479, 119.0),
    "LFPO": ("Paris Orly", 48.7233, 2.3794, 89.0),
}
