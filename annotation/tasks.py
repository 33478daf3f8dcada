from celery import Task, shared_task

from annotation.imports import import_studies as import_studies_handler
from annotation.uploads import ingest_upload as ingest_upload_handler
from jobs.tasks import JOB_TASK_OPTIONS, execute


@shared_task(**JOB_TASK_OPTIONS)
def import_studies(self: Task, job_id: int) -> str:
    return execute(self, job_id, import_studies_handler)


@shared_task(**JOB_TASK_OPTIONS)
def ingest_upload(self: Task, job_id: int) -> str:
    return execute(self, job_id, ingest_upload_handler)
