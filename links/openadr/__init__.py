"""OpenADR 2.0b: the twin as a VEN (``factory-twin openadr-ven``) with openleadr; events mapped by the facility's
``[openadr]`` table onto DR events and import targets of the running twin, TELEMETRY_USAGE reports of its import."""
