"""DSX Exchange (BMS Event Bus over MQTT): the contract, a facility's points, the BMS emulator and the
connector that runs the shadow twin beside the plant."""
