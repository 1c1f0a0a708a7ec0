"""Redfish (DMTF DSP0266): the facility's BMCs emulated on a running twin, and steering their power limits.

``emulator`` (the twin behind one aggregating Redfish service), ``service`` (the WSGI app), ``documents`` (the
resources), ``limits`` (per-GPU power limits and ETags), ``layout`` (nodes and GPUs as index arrays),
``auth`` (accounts and sessions), ``patch`` (checking writes), ``messages`` (Base registry errors), ``server``
(uvicorn, HTTPS) and ``steer`` (pushing limits to BMCs with DMTF's ``redfish`` client). See docs/links.md.
"""
