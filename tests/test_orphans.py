from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from django_offload import leases
from django_offload.models import Task
from tests.offload_support import (
    Device,
    fresh_channel_layer,  # noqa: F401
    make_prompt,
    make_user,
    offload_settings,  # noqa: F401
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("offload_settings"),
]


def add_task(version, user, *, age, status, deadline_offset=None):
    """
    Create a task ``age`` old, with a lease deadline ``deadline_offset`` from
    now (None for no deadline).
    """
    now = timezone.now()
    task = Task.objects.create(
        prompt_version=version,
        user=user,
        status=status,
        lease_deadline=None if deadline_offset is None else now + deadline_offset,
    )
    Task.objects.filter(id=task.id).update(created_at=now - age)
    return task.id


def status_of(task_id):
    task = Task.objects.get(id=task_id)
    return task.status, task.error_code


async def test_hello_expires_owners_orphaned_tasks():
    version = await make_prompt()
    ann, key = await make_user("ann")
    bob, _ = await make_user("bob")
    old = leases.orphan_horizon() + timedelta(seconds=5)
    create = database_sync_to_async(add_task)
    orphan = await create(
        version,
        ann,
        age=old,
        status=Task.Status.LEASED,
        deadline_offset=timedelta(minutes=-10),
    )
    pending = await create(version, ann, age=old, status=Task.Status.PENDING)
    renewed = await create(
        version,
        ann,
        age=old,
        status=Task.Status.RUNNING,
        deadline_offset=timedelta(minutes=5),
    )
    recent = await create(
        version, ann, age=timedelta(seconds=1), status=Task.Status.PENDING
    )
    others = await create(version, bob, age=old, status=Task.Status.PENDING)

    device = Device(key)
    assert await device.connect()
    await device.hello()
    await device.close()

    read = database_sync_to_async(status_of)
    assert await read(orphan) == ("expired", "supervisor-lost")
    assert await read(pending) == ("expired", "supervisor-lost")
    assert await read(renewed) == ("running", "")
    assert await read(recent) == ("pending", "")
    assert await read(others) == ("pending", "")


@database_sync_to_async
def run_command_on_orphans():
    from django.contrib.auth import get_user_model

    from django_offload.models import PromptVersion

    version = PromptVersion.objects.get()
    user = get_user_model().objects.get(username="ann")
    old = leases.orphan_horizon() + timedelta(seconds=5)
    orphan = add_task(version, user, age=old, status=Task.Status.PENDING)
    finished = add_task(version, user, age=old, status=Task.Status.SUCCEEDED)
    from io import StringIO

    out = StringIO()
    call_command("offload_tasks", "expire-orphans", stdout=out)
    return out.getvalue(), status_of(orphan), status_of(finished)


async def test_expire_orphans_command():
    await make_prompt()
    await make_user("ann")
    output, orphan, finished = await run_command_on_orphans()
    assert output.strip() == "Expired 1 orphaned task(s)."
    assert orphan == ("expired", "supervisor-lost")
    assert finished == ("succeeded", "")
