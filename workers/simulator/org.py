"""A whole organization for a simulator, made in one go (no callbacks): the directory a first
full sync imports. Seeded, so a failing run can be replayed."""

from __future__ import annotations

import random

from workers.simulator.directory import ROOT_ID, SimDepartment, SimulatedDirectory, SimUser

_TITLES = ("工程师", "产品经理", "设计师", "销售", "财务", "法务", "", "")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


def populate(
    sim: SimulatedDirectory, users: int, departments: int, depth: int, seed: int = 1
) -> None:
    """`departments` in all (the root included), reaching exactly `depth` levels below the
    root; `users` spread over them, one in five in two or three departments."""
    rng = random.Random(seed)
    levels: list[list[int]] = [[ROOT_ID]]
    for level in range(1, depth + 1):  # one chain first, so the tree is `depth` deep
        levels.append([_add_department(sim, rng, levels[level - 1][0], level)])
    while len(sim.departments) < departments:
        level = rng.randrange(1, depth + 1)
        levels[level].append(_add_department(sim, rng, rng.choice(levels[level - 1]), level))
    ids = [d for d in sim.departments if d != ROOT_ID]
    for index in range(users):
        count = 1 if rng.random() < 0.8 else rng.choice((2, 3))
        chosen = tuple(rng.sample(ids, count))
        userid = f"u{index:05d}"
        sim.users[userid] = SimUser(
            userid=userid,
            name=rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
            departments=chosen,
            main_department=chosen[0],
            position=rng.choice(_TITLES),
            email=f"{userid}@example.com",
            mobile=f"138{index:08d}",
        )


def _add_department(sim: SimulatedDirectory, rng: random.Random, parent_id: int, level: int) -> int:
    department_id = sim.new_department_id()
    name = f"L{level}-{department_id}-" + rng.choice(("研发", "市场", "运营", "支持", "平台"))
    sim.departments[department_id] = SimDepartment(department_id, name, parent_id, department_id)
    return department_id
