"""Running a built program on a backend: progress, Ctrl-C, summary (shared by the launchers)."""

import signal

from absl import logging


def run_program(program, launch_type: str, backend) -> dict:
    """Run ``program`` to the end (or Ctrl-C); prints and returns the summary."""
    from launch.progress import ProgressDisplay, summary_text
    from launch.run_dir import write_json
    from launch.supervisor import Supervisor

    write_json(program.run_dir, "config.json", program.config.to_dict())
    display = ProgressDisplay(period_s=float(program.config.runtime.progress_every_s))
    try:
        supervisor = Supervisor(program, backend, display, status_dir=program.run_dir)
        install_stop_handler(supervisor)
        summary = supervisor.run()
    finally:
        display.close()
        backend.shutdown()
    summary["actor_restarts"] = supervisor.restarts
    summary["stopped_early"] = supervisor.stop_requested.is_set()
    write_json(program.run_dir, "summary.json", summary)
    print(summary_text(summary, program.run_dir, launch_type, supervisor.restarts), flush=True)
    return summary


def install_stop_handler(supervisor) -> None:
    """First Ctrl-C: stop cleanly (final checkpoint). A second one: abort at once."""

    def on_sigint(signum, frame):
        if supervisor.stop_requested.is_set():
            raise KeyboardInterrupt
        logging.warning("stopping: finishing the current update and writing a checkpoint")
        supervisor.stop_requested.set()

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
