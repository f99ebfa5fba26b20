"""The recovery policy: scores, exploration, start levels, escalation, back-off."""

from __future__ import annotations

from dtf.recovery import policy
from dtf.recovery import strategies as st
from dtf.recovery.scoring import Record, exploration_bonus, reference_score, score


def test_an_untried_strategy_scores_one_half_like_the_reference():
    assert score(Record()) == reference_score(Record()) == 0.5


def test_one_unlucky_failure_does_not_sink_a_strategy_as_it_does_in_the_reference():
    failed_once = Record(attempts=1, successes=0, recover_s=1.0, recent=[0], tests_affected=1)
    assert reference_score(failed_once) < 0.35
    assert score(failed_once) > reference_score(failed_once)


def test_exploration_makes_a_long_unused_strategy_win_again():
    table = {
        ("crash", "retry_test_spawned"): Record(attempts=40, successes=20, recent=[1, 0] * 5),
        ("crash", "other"): Record(attempts=1, successes=0, recent=[0]),
    }
    winner, loser = table[("crash", "retry_test_spawned")], table[("crash", "other")]
    assert score(winner) > score(loser)
    assert exploration_bonus(loser, 41) > exploration_bonus(winner, 41)
    assert score(loser) + exploration_bonus(loser, 41) > score(winner) + exploration_bonus(
        winner, 41
    )


def test_the_best_scoring_strategy_of_a_level_is_chosen():
    table = {
        ("worker_lost", "other_hardware"): Record(attempts=20, successes=20, recent=[1] * 10),
        ("worker_lost", "quarantine_worker"): Record(attempts=20, successes=2, recent=[0] * 10),
    }
    chosen = policy.choose("worker_lost", 4, table, "batch")
    assert chosen.name == "other_hardware"


def test_a_hung_test_is_isolated_at_once_not_run_again():
    # Running it again (longer) made a hung test cost three times its timeout.
    assert policy.start_level("hang", {}, "test") == 3
    assert policy.choose("hang", 3, {}, "test").name == "isolate_test"


def test_a_level_that_never_helped_a_class_is_skipped():
    hopeless = Record(attempts=policy.HOPELESS_AFTER, successes=0, recent=[0] * 5)
    assert policy.start_level("crash", {}, "test") == 1
    table = {("crash", "retry_test"): hopeless}
    assert policy.start_level("crash", table, "test") == 2
    table[("crash", "retry_test_spawned")] = hopeless
    assert policy.start_level("crash", table, "test") == 3


def test_without_an_applicable_strategy_the_choice_escalates_to_giving_up():
    chosen = policy.choose("env_broken", 1, {}, "batch", applicable=lambda s: False)
    assert chosen.name == "give_up" and chosen.level == st.CRITICAL


def test_an_unknown_culprit_is_bisected_not_isolated():
    chosen = policy.choose("crash", 3, {}, "test", culprit_known=False)
    assert chosen.name == "bisect"


def test_every_class_has_a_strategy_at_every_start_and_all_end_in_give_up():
    for failure_class in ("crash", "hang", "oom", "worker_lost", "env_broken", "db_unreachable"):
        assert st.candidates(failure_class, st.CRITICAL, "batch")[0].name == "give_up"


def test_backoff_grows_with_jitter_and_is_capped():
    assert policy.backoff_s(1, 0.0, rand=lambda: 1.0) == 0.5
    assert policy.backoff_s(3, 0.0, rand=lambda: 1.0) == 2.0
    assert policy.backoff_s(3, 0.0, rand=lambda: 0.0) == 0.0
    assert policy.backoff_s(20, 5.0, rand=lambda: 1.0) == 30.0
