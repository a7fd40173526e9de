"""The Celery app the scaled profile's workers run (`tokens2chips workers`, or
`celery -A pipelines.celery_app worker -Q dagster`): dagster-celery's step task, on the broker and result backend
of pipelines/settings.Scaled (Redis, with the deployment's key prefix), as the run's celery executor sees them."""

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from pipelines.settings import celery_executor_config

app = make_app({**celery_executor_config(), "retries": None})
execute_plan = create_task(app)
