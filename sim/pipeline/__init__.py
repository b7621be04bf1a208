"""Pipeline parallelism: actions, schedules (data), validity, execution on the engine."""
