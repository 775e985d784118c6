"""Sequences of directory changes: a scripted day (the demo) and random ones (end-to-end test).

Each yields the callback plaintexts WeCom would send, in order; None where WeCom sends nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from workers.simulator.dingtalk import DingTalkSimulator
from workers.simulator.feishu import FeishuSimulator
from workers.simulator.wecom import ROOT_ID, SimUser, WeComSimulator

SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "𠮷"]
DEPARTMENT_NAMES = ["研发", "平台", "销售", "市场", "财务", "法务", "运营", "华东", "华南", "数据"]


def scripted_day(sim: WeComSimulator) -> Iterator[bytes | None]:
    """Departments, members, a move, a rename, a userid change and a leaver, in both forms."""
    yield sim.create_department("研发中心", ROOT_ID, "full")
    rd = max(sim.departments)
    yield sim.create_department("平台组", rd, "ids")
    platform = max(sim.departments)
    yield sim.create_department("销售部", ROOT_ID, "full")
    sales = max(sim.departments)
    yield sim.create_user(
        SimUser(
            "zhangwei",
            "张伟",
            (rd, platform),
            rd,
            "高级工程师",
            "zhangwei@example.com",
            "13800000001",
        ),
        "full",
    )
    yield sim.create_user(SimUser("lisi", "李四", (sales,), sales, "销售经理"), "ids")
    yield sim.create_user(SimUser("wangfang", "王芳", (platform,), platform, "工程师"), "ids")
    yield sim.create_user(SimUser("jiqiang", "𠮷强", (rd,), rd), "full")
    yield sim.move_department(platform, sales, "ids")  # 平台组 moves under 销售部
    yield sim.rename_department(sales, "销售与市场部", "full")
    yield sim.update_user("lisi", "ids", departments=(rd, sales), main_department=rd)
    yield sim.rename_userid("wangfang", "wang.fang", "full")
    yield sim.update_user("zhangwei", "full", position="架构师")
    yield sim.delete_user("jiqiang")  # a leaver: deactivated, not lost


AnySimulator = WeComSimulator | DingTalkSimulator | FeishuSimulator


def random_changes(sim: AnySimulator, rng: random.Random, count: int) -> Iterator[bytes]:
    """`count` random changes the vendor would call back, each in a random form: WeCom's
    full-field or id-only, DingTalk's legacy or event-subscription payload; Feishu's users
    also leave and re-enter the app's contact scope."""
    renamed: set[str] = set()
    forms = ["full", "ids"] if isinstance(sim, WeComSimulator) else ["legacy", "subscription"]
    made = 0
    while made < count:
        form: Any = rng.choice(forms)
        change = _random_change(sim, rng, form, renamed)
        if change is not None:
            made += 1
            yield change


def _random_change(
    sim: AnySimulator, rng: random.Random, form: Any, renamed: set[str]
) -> bytes | None:
    departments = sorted(sim.departments)
    non_root = [d for d in departments if d != ROOT_ID]
    users = sorted(sim.users)
    kind = rng.choice(
        [
            "dept+",
            "dept+",
            "rename",
            "move",
            "dept-",
            "user+",
            "user+",
            "user+",
            "user~",
            "user~",
            "userid",
            "user-",
            "scope",
        ]
    )
    if kind == "scope" and isinstance(sim, FeishuSimulator):
        # Out of the app's sight, or back in it: to the app, a leaver or a hire.
        hidden = sorted(u for u in sim.departed if u in sim.scoped_out)
        if hidden and rng.random() < 0.5:
            return sim.scope_in(rng.choice(hidden))
        return sim.scope_out(rng.choice(users)) if users else None
    if kind == "dept+" and len(departments) < 12:
        return sim.create_department(rng.choice(DEPARTMENT_NAMES), rng.choice(departments), form)
    if kind == "rename" and non_root:
        # In the id-only form WeCom sends no rename; full form only, so the test can converge.
        rename_form: Any = "full" if form == "ids" else form
        return sim.rename_department(
            rng.choice(non_root), rng.choice(DEPARTMENT_NAMES) + "部", rename_form
        )
    if kind == "move" and non_root:
        moving = rng.choice(non_root)
        targets = [d for d in departments if d not in sim.subtree(moving)]
        return sim.move_department(moving, rng.choice(targets), form) if targets else None
    if kind == "dept-":
        empty = [d for d in non_root if sim.is_empty(d)]
        return sim.delete_department(rng.choice(empty)) if empty else None
    if kind == "user+":
        userid = f"u{len(sim.users) + len(sim.departed) + 1:03d}"
        homes = tuple(sorted(rng.sample(departments, k=min(len(departments), rng.randint(1, 2)))))
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        return sim.create_user(
            SimUser(userid, name, homes, homes[0], rng.choice(["", "工程师", "经理"])), form
        )
    if kind == "user~" and users:
        userid = rng.choice(users)
        homes = tuple(sorted(rng.sample(departments, k=min(len(departments), rng.randint(1, 2)))))
        options: list[dict[str, object]] = [
            {"name": rng.choice(SURNAMES) + rng.choice(GIVEN)},
            {"position": rng.choice(["总监", "工程师", ""])},
            {"departments": homes, "main_department": homes[0]},
        ]
        if sim.supports_status:
            options.append({"status": rng.choice([1, 2])})
        return sim.update_user(userid, form, **rng.choice(options))
    if kind == "userid" and users and sim.supports_userid_rename:
        assert isinstance(sim, WeComSimulator)
        candidates = [u for u in users if u not in renamed]
        if candidates:
            old = rng.choice(candidates)
            renamed.add(old + ".x")
            return sim.rename_userid(old, old + ".x", form)
    if kind == "user-" and users:
        return sim.delete_user(rng.choice(users))
    return None
