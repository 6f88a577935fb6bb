"""Settings for the fault drills (`make faults`): production's, with webhook retries in seconds
rather than minutes so that a receiver that was down is caught up within the drill. Used by every
process of a drill run (web server, qcluster, the drill itself) through DJANGO_SETTINGS_MODULE.
Issuance knobs (Q_RETRY, Q_TIMEOUT, ISSUANCE_STUCK_SECONDS) come from the environment as usual.
"""

from channel_manager.settings import *  # noqa: F403

# Wait before attempt n+1: 60 attempts a second apart, then failed.
WEBHOOK_RETRY_DELAYS = (0,) + (1,) * 59
WEBHOOK_TIMEOUT_SECONDS = 3
WEBHOOK_TASK_BUDGET_SECONDS = 10
# Circuit breaker cool-downs in seconds too (production: 30 s doubling up to 15 min), so that the
# webhooks drill's receiver, flaky after being down, is caught up within the drill.
WEBHOOK_BREAKER_COOLDOWN_SECONDS = 2
WEBHOOK_BREAKER_MAX_COOLDOWN_SECONDS = 4
