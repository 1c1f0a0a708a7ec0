"""Unit conversion factors, each defined once (all exact by definition of the units).

Multiply a value in the named unit by the factor to get SI: ``p_w = p_mw * MW``; divide to go back.
"""

from __future__ import annotations

KW = 1e3  # W per kW
MW = 1e6  # W per MW
MJ = 1e6  # J per MJ
S_PER_MIN = 60.0
S_PER_H = 3600.0
J_PER_KWH = 3.6e6  # 1 kWh = 3.6e6 J
J_PER_MWH = 3.6e9  # 1 MWh = 3.6e9 J
T0_K = 273.15  # 0 degC in kelvin
M3_PER_L = 1e-3
M3_S_PER_L_MIN = M3_PER_L / S_PER_MIN  # m3/s per L/min
TOKENS_PER_MTOK = 1e6  # tokens in one million tokens
KG_PER_T = 1e3  # kg per tonne
