"""The node agent: GPU and host telemetry, deploy revisions, served over HTTP (`fleetdeck agent`).

`console.agent.nvml` is the only module that talks to NVML; `gpus` and `host` turn NVML and
psutil readings into the snapshot's figures; `telemetry.Telemetry` batches and caches them.
"""
