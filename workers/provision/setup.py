"""The provisioning path of every tenant that has it on, for `orgstream directory` to serve:
each tenant's vendor writer and reader (its own token, proxy and rate), and the store the
writes are read back into."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from schemas.config import Settings, TenantSettings
from workers.apply.appliers import open_vendor_source
from workers.apply.mapping import Namespace
from workers.directory.indexer import DirectoryIndexer
from workers.directory.reader import DirectoryReader
from workers.kafka.producer import Producer
from workers.provision.guard import ProvisioningGuard
from workers.provision.provisioner import Provisioner
from workers.provision.refresh import Refresher
from workers.store.directory_index import DirectoryIndex
from workers.store.history import open_history
from workers.store.ledger import open_ledger
from workers.store.mirror import open_mirror
from workers.vendors.dingtalk_writes import DingTalkWriter
from workers.vendors.source import SourceDirectory
from workers.vendors.wecom import WeComDirectory
from workers.vendors.wecom_writes import WeComWriter
from workers.vendors.writes import DirectoryWriter


@contextlib.asynccontextmanager
async def open_provisioners(
    settings: Settings, reader: DirectoryReader, index: DirectoryIndex
) -> AsyncIterator[dict[str, Provisioner]]:
    tenants = [t for t in settings.tenants if t.provisioning is not None]
    if not tenants:
        yield {}
        return
    async with contextlib.AsyncExitStack() as opened:
        mirror = open_mirror(settings.store.url)
        opened.push_async_callback(mirror.aclose)
        history = open_history(settings.store.url)
        opened.push_async_callback(history.aclose)
        indexer = DirectoryIndexer(index, mirror, settings)
        ledger = open_ledger(settings.store.url)
        opened.push_async_callback(ledger.aclose)
        guard = ProvisioningGuard(settings.guard, ledger, index)
        feed: tuple[Producer, str] | None = None
        if settings.feed.enabled:
            producer = Producer(settings.kafka.bootstrap_servers, settings.kafka.topic)
            opened.push_async_callback(producer.stop)
            feed = (producer, settings.kafka.directory_topic)
        provisioners: dict[str, Provisioner] = {}
        for tenant in tenants:
            refresher = Refresher(
                tenant, _reads(tenant), mirror, indexer, settings.feed.exclude_fields, feed
            )
            names = Namespace(
                tenant.vendor, tenant.corp_id, tenant.id, settings.scim_for(tenant).user_name
            )
            provisioner = Provisioner(
                tenant, _writer(tenant), refresher, reader, index, mirror, history,
                names.user_name, guard,
            )  # fmt: skip
            opened.push_async_callback(provisioner.aclose)
            provisioners[tenant.id] = provisioner
        yield provisioners


def _writer(tenant: TenantSettings) -> DirectoryWriter:
    if tenant.vendor == "dingtalk":
        assert tenant.app_key is not None
        assert tenant.app_secret is not None
        return DingTalkWriter(
            tenant.api_base,
            tenant.app_key,
            tenant.app_secret.reveal(),
            proxy=tenant.proxy,
            qps=tenant.api_qps,
        )
    assert tenant.provisioning is not None
    assert tenant.provisioning.sync_secret is not None
    return WeComWriter(
        tenant.api_base,
        tenant.corp_id,
        tenant.provisioning.sync_secret.reveal(),
        proxy=tenant.proxy,
        qps=tenant.api_qps,
    )


def _reads(tenant: TenantSettings) -> SourceDirectory:
    """The app's secret reads where there is one; the contact-sync secret reads as well."""
    if tenant.vendor != "wecom" or tenant.api_secret is not None or tenant.provisioning is None:
        return open_vendor_source(tenant)
    assert tenant.provisioning.sync_secret is not None
    return WeComDirectory(
        tenant.api_base,
        tenant.corp_id,
        tenant.provisioning.sync_secret.reveal(),
        proxy=tenant.proxy,
        qps=tenant.api_qps,
    )
