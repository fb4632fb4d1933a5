from celery import shared_task

from partners.usage import flush_usage


@shared_task(name="partners.flush_usage", ignore_result=True, soft_time_limit=50, time_limit=60)
def flush_usage_task() -> int:
    """Every minute (beat): usage counted in Redis into KeyUsage."""
    return flush_usage()
