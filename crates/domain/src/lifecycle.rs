//! The machine life cycle: which status writes are allowed (MAAS's
//! transition table, provisioning.md §1.2), and what each action or signal
//! from a booted machine leads to.
//!
//! Every match here lists every status, with no catch-all arm, so adding a
//! status makes the compiler point at each place that must decide about it.

use crate::status::NodeStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Invalid transition: {} -> {}", from.label(), to.label())]
pub struct InvalidTransition {
    pub from: NodeStatus,
    pub to: NodeStatus,
}

/// Whether a status write from `from` to `to` is allowed. Writing the same
/// status is always allowed.
pub fn allowed(from: NodeStatus, to: NodeStatus) -> bool {
    use NodeStatus::*;
    if from == to {
        return true;
    }
    let targets: &[NodeStatus] = match from {
        New => &[
            Commissioning,
            Testing,
            Missing,
            Ready,
            Retired,
            Broken,
            EnteringRescueMode,
        ],
        Commissioning => &[
            FailedCommissioning,
            Ready,
            Retired,
            Missing,
            New,
            Broken,
            Testing,
        ],
        FailedCommissioning => &[
            Commissioning,
            Missing,
            Retired,
            Broken,
            EnteringRescueMode,
            Testing,
        ],
        Ready => &[
            EnteringRescueMode,
            Commissioning,
            Allocated,
            Reserved,
            Retired,
            Missing,
            Broken,
            Testing,
        ],
        Reserved => &[
            Ready,
            Allocated,
            Retired,
            Missing,
            Broken,
            DiskErasing,
            Releasing,
            EnteringRescueMode,
            Testing,
        ],
        Allocated => &[
            Ready,
            Retired,
            Missing,
            Broken,
            Deploying,
            DiskErasing,
            Releasing,
            EnteringRescueMode,
            Testing,
        ],
        Deploying => &[
            Allocated,
            Missing,
            Broken,
            FailedDeployment,
            Deployed,
            Ready,
            DiskErasing,
            Releasing,
        ],
        FailedDeployment => &[
            Allocated,
            Missing,
            Broken,
            Ready,
            DiskErasing,
            Releasing,
            EnteringRescueMode,
            Testing,
        ],
        Deployed => &[
            Allocated,
            Missing,
            Broken,
            Ready,
            DiskErasing,
            Releasing,
            EnteringRescueMode,
            Testing,
        ],
        Releasing => &[
            New,
            Allocated,
            Reserved,
            Deployed,
            Ready,
            Broken,
            Missing,
            FailedDeployment,
            FailedDiskErasing,
            FailedReleasing,
        ],
        FailedReleasing => &[Releasing, DiskErasing, Ready, Broken, Testing],
        DiskErasing => &[Broken, DiskErasing, FailedDiskErasing, Ready, Releasing],
        FailedDiskErasing => &[
            DiskErasing,
            Releasing,
            Broken,
            Allocated,
            Ready,
            EnteringRescueMode,
            Testing,
        ],
        Missing => &[
            New,
            Ready,
            Allocated,
            Commissioning,
            Broken,
            EnteringRescueMode,
            Testing,
        ],
        Retired => &[New, Ready, Missing, Broken, EnteringRescueMode, Testing],
        Broken => &[
            Commissioning,
            Ready,
            DiskErasing,
            Releasing,
            EnteringRescueMode,
            Testing,
            Deployed,
        ],
        EnteringRescueMode => &[
            Ready,
            Broken,
            Deployed,
            RescueMode,
            FailedEnteringRescueMode,
            ExitingRescueMode,
        ],
        FailedEnteringRescueMode => &[Broken, EnteringRescueMode, ExitingRescueMode, Testing],
        RescueMode => &[Broken, ExitingRescueMode, Testing],
        ExitingRescueMode => {
            return !matches!(
                to,
                Commissioning
                    | Deploying
                    | Releasing
                    | DiskErasing
                    | Testing
                    | EnteringRescueMode
                    | ExitingRescueMode
            );
        }
        FailedExitingRescueMode => &[Broken, ExitingRescueMode, Testing],
        Testing => &[
            Broken,
            New,
            Ready,
            Reserved,
            Allocated,
            Deployed,
            Commissioning,
            FailedDeployment,
            Missing,
            Retired,
            FailedReleasing,
            FailedDiskErasing,
            FailedEnteringRescueMode,
            FailedExitingRescueMode,
            FailedTesting,
        ],
        FailedTesting => &[
            Commissioning,
            Broken,
            Missing,
            EnteringRescueMode,
            Testing,
            Ready,
            Deployed,
        ],
    };
    targets.contains(&to)
}

pub fn check(from: NodeStatus, to: NodeStatus) -> Result<(), InvalidTransition> {
    if allowed(from, to) {
        Ok(())
    } else {
        Err(InvalidTransition { from, to })
    }
}

/// Statuses in which a machine has an owner and isn't commissioning.
pub fn is_allocated_status(status: NodeStatus) -> bool {
    use NodeStatus::*;
    match status {
        Allocated
        | Deploying
        | Deployed
        | FailedDeployment
        | Releasing
        | FailedReleasing
        | DiskErasing
        | FailedDiskErasing
        | RescueMode
        | EnteringRescueMode
        | FailedEnteringRescueMode
        | ExitingRescueMode
        | FailedExitingRescueMode
        | Testing
        | FailedTesting => true,
        New | Commissioning | FailedCommissioning | Missing | Ready | Reserved | Retired
        | Broken => false,
    }
}

/// Statuses `release` accepts (api.md §8.5).
pub fn is_releasable(status: NodeStatus) -> bool {
    use NodeStatus::*;
    match status {
        Allocated | Reserved | Broken | Deploying | Deployed | FailedDeployment
        | FailedDiskErasing | FailedReleasing => true,
        New
        | Commissioning
        | FailedCommissioning
        | Missing
        | Ready
        | Retired
        | Releasing
        | DiskErasing
        | RescueMode
        | EnteringRescueMode
        | FailedEnteringRescueMode
        | ExitingRescueMode
        | FailedExitingRescueMode
        | Testing
        | FailedTesting => false,
    }
}

/// Statuses in which the machine boots the ephemeral environment and its
/// progress is watched by a timer (provisioning.md §1.5).
pub fn is_monitored(status: NodeStatus) -> bool {
    use NodeStatus::*;
    match status {
        Commissioning | Deploying | Releasing | EnteringRescueMode | ExitingRescueMode
        | Testing => true,
        New
        | FailedCommissioning
        | Missing
        | Ready
        | Reserved
        | Deployed
        | Retired
        | Broken
        | Allocated
        | FailedDeployment
        | FailedReleasing
        | DiskErasing
        | FailedDiskErasing
        | RescueMode
        | FailedEnteringRescueMode
        | FailedExitingRescueMode
        | FailedTesting => false,
    }
}

/// Statuses `mark_broken` accepts: the in-progress and settled ones, and
/// every failure (provisioning.md §1.3).
pub fn can_mark_broken(status: NodeStatus) -> bool {
    use NodeStatus::*;
    match status {
        New
        | Commissioning
        | Ready
        | Allocated
        | Releasing
        | Deploying
        | Deployed
        | DiskErasing
        | Testing
        | FailedCommissioning
        | FailedDeployment
        | FailedReleasing
        | FailedDiskErasing
        | FailedEnteringRescueMode
        | FailedExitingRescueMode
        | FailedTesting => true,
        Missing | Reserved | Retired | Broken | RescueMode | EnteringRescueMode
        | ExitingRescueMode => false,
    }
}

/// Where `abort` takes a machine (provisioning.md §1.7), or `None` when the
/// status has nothing to abort.
pub fn abort_target(status: NodeStatus, previous: NodeStatus) -> Option<NodeStatus> {
    use NodeStatus::*;
    match status {
        Commissioning => Some(New),
        Testing => Some(if previous == Commissioning {
            Ready
        } else {
            testing_return(previous)
        }),
        Deploying => Some(Allocated),
        DiskErasing => Some(FailedDiskErasing),
        New
        | FailedCommissioning
        | Missing
        | Ready
        | Reserved
        | Deployed
        | Retired
        | Broken
        | Allocated
        | FailedDeployment
        | Releasing
        | FailedReleasing
        | FailedDiskErasing
        | RescueMode
        | EnteringRescueMode
        | FailedEnteringRescueMode
        | ExitingRescueMode
        | FailedExitingRescueMode
        | FailedTesting => None,
    }
}

/// Where a machine goes after a passed test run: READY for the statuses of
/// MAAS's "testing resets to READY" set, else back where it came from.
pub fn testing_return(previous: NodeStatus) -> NodeStatus {
    use NodeStatus::*;
    match previous {
        New
        | Commissioning
        | FailedDeployment
        | Missing
        | Retired
        | Broken
        | FailedReleasing
        | FailedDiskErasing
        | FailedEnteringRescueMode
        | FailedExitingRescueMode
        | FailedTesting
        | Ready
        | Testing => Ready,
        FailedCommissioning => New,
        Reserved | Allocated | Deployed | Deploying | Releasing | DiskErasing | RescueMode
        | EnteringRescueMode | ExitingRescueMode => previous,
    }
}

/// What `mark_fixed` restores: DEPLOYED if the machine broke while deployed.
pub fn fixed_target(previous: NodeStatus) -> NodeStatus {
    if previous == NodeStatus::Deployed {
        NodeStatus::Deployed
    } else {
        NodeStatus::Ready
    }
}

/// The status a successful commissioning run ends in.
pub fn commissioning_done(enlisting: bool, any_script_failed: bool) -> NodeStatus {
    match (enlisting, any_script_failed) {
        (_, true) => NodeStatus::FailedCommissioning,
        (true, false) => NodeStatus::New,
        (false, false) => NodeStatus::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeStatus::*;

    /// Every allowed (from, to) pair, written out from provisioning.md §1.2.
    const TABLE: &[(NodeStatus, &[NodeStatus])] = &[
        (
            New,
            &[
                Commissioning,
                Testing,
                Missing,
                Ready,
                Retired,
                Broken,
                EnteringRescueMode,
            ],
        ),
        (
            Commissioning,
            &[
                FailedCommissioning,
                Ready,
                Retired,
                Missing,
                New,
                Broken,
                Testing,
            ],
        ),
        (
            FailedCommissioning,
            &[
                Commissioning,
                Missing,
                Retired,
                Broken,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Ready,
            &[
                EnteringRescueMode,
                Commissioning,
                Allocated,
                Reserved,
                Retired,
                Missing,
                Broken,
                Testing,
            ],
        ),
        (
            Reserved,
            &[
                Ready,
                Allocated,
                Retired,
                Missing,
                Broken,
                DiskErasing,
                Releasing,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Allocated,
            &[
                Ready,
                Retired,
                Missing,
                Broken,
                Deploying,
                DiskErasing,
                Releasing,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Deploying,
            &[
                Allocated,
                Missing,
                Broken,
                FailedDeployment,
                Deployed,
                Ready,
                DiskErasing,
                Releasing,
            ],
        ),
        (
            FailedDeployment,
            &[
                Allocated,
                Missing,
                Broken,
                Ready,
                DiskErasing,
                Releasing,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Deployed,
            &[
                Allocated,
                Missing,
                Broken,
                Ready,
                DiskErasing,
                Releasing,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Releasing,
            &[
                New,
                Allocated,
                Reserved,
                Deployed,
                Ready,
                Broken,
                Missing,
                FailedDeployment,
                FailedDiskErasing,
                FailedReleasing,
            ],
        ),
        (
            FailedReleasing,
            &[Releasing, DiskErasing, Ready, Broken, Testing],
        ),
        (DiskErasing, &[Broken, FailedDiskErasing, Ready, Releasing]),
        (
            FailedDiskErasing,
            &[
                DiskErasing,
                Releasing,
                Broken,
                Allocated,
                Ready,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Missing,
            &[
                New,
                Ready,
                Allocated,
                Commissioning,
                Broken,
                EnteringRescueMode,
                Testing,
            ],
        ),
        (
            Retired,
            &[New, Ready, Missing, Broken, EnteringRescueMode, Testing],
        ),
        (
            Broken,
            &[
                Commissioning,
                Ready,
                DiskErasing,
                Releasing,
                EnteringRescueMode,
                Testing,
                Deployed,
            ],
        ),
        (
            EnteringRescueMode,
            &[
                Ready,
                Broken,
                Deployed,
                RescueMode,
                FailedEnteringRescueMode,
                ExitingRescueMode,
            ],
        ),
        (
            FailedEnteringRescueMode,
            &[Broken, EnteringRescueMode, ExitingRescueMode, Testing],
        ),
        (RescueMode, &[Broken, ExitingRescueMode, Testing]),
        (
            ExitingRescueMode,
            &[
                New,
                FailedCommissioning,
                Missing,
                Ready,
                Reserved,
                Deployed,
                Retired,
                Broken,
                Allocated,
                FailedDeployment,
                FailedReleasing,
                FailedDiskErasing,
                RescueMode,
                FailedEnteringRescueMode,
                FailedExitingRescueMode,
                FailedTesting,
            ],
        ),
        (
            FailedExitingRescueMode,
            &[Broken, ExitingRescueMode, Testing],
        ),
        (
            Testing,
            &[
                Broken,
                New,
                Ready,
                Reserved,
                Allocated,
                Deployed,
                Commissioning,
                FailedDeployment,
                Missing,
                Retired,
                FailedReleasing,
                FailedDiskErasing,
                FailedEnteringRescueMode,
                FailedExitingRescueMode,
                FailedTesting,
            ],
        ),
        (
            FailedTesting,
            &[
                Commissioning,
                Broken,
                Missing,
                EnteringRescueMode,
                Testing,
                Ready,
                Deployed,
            ],
        ),
    ];

    #[test]
    fn every_pair_matches_the_table() {
        assert_eq!(TABLE.len(), 23, "one row per status");
        let mut allowed_pairs = 0;
        for from in NodeStatus::ALL {
            let row = TABLE
                .iter()
                .find(|(f, _)| *f == from)
                .expect("row for every status")
                .1;
            for to in NodeStatus::ALL {
                let expected = from == to || row.contains(&to);
                assert_eq!(allowed(from, to), expected, "{from:?} -> {to:?}");
                if expected && from != to {
                    allowed_pairs += 1;
                }
                assert_eq!(check(from, to).is_ok(), expected);
            }
        }
        assert_eq!(
            allowed_pairs,
            TABLE
                .iter()
                .map(|(_, targets)| targets.len())
                .sum::<usize>()
        );
    }

    #[test]
    fn refusals_say_what_was_refused() {
        let error = check(New, Deployed).unwrap_err();
        assert_eq!(error.to_string(), "Invalid transition: New -> Deployed");
    }

    fn check_abort(status: NodeStatus, previous: NodeStatus, expected: Option<NodeStatus>) {
        assert_eq!(
            abort_target(status, previous),
            expected,
            "{status:?} (previous {previous:?})"
        );
        if let Some(to) = expected {
            assert!(
                allowed(status, to),
                "abort {status:?} -> {to:?} must be a legal write"
            );
        }
    }

    #[test]
    fn abort_targets() {
        check_abort(Commissioning, New, Some(New));
        check_abort(Testing, Commissioning, Some(Ready));
        check_abort(Testing, Deployed, Some(Deployed));
        check_abort(Testing, Allocated, Some(Allocated));
        check_abort(Deploying, Allocated, Some(Allocated));
        check_abort(DiskErasing, Releasing, Some(FailedDiskErasing));
        for status in [
            New,
            Ready,
            Allocated,
            Deployed,
            Broken,
            Releasing,
            FailedDeployment,
            RescueMode,
        ] {
            check_abort(status, New, None);
        }
    }

    #[test]
    fn monitored_statuses_fail_to_their_counterparts() {
        for status in NodeStatus::ALL {
            if is_monitored(status) {
                let failure = status
                    .failure_counterpart()
                    .expect("monitored statuses can fail");
                assert!(allowed(status, failure), "{status:?} -> {failure:?}");
            }
        }
    }

    #[test]
    fn release_broken_and_fixed() {
        for status in NodeStatus::ALL {
            if is_releasable(status) {
                assert!(
                    allowed(status, Releasing),
                    "{status:?} is releasable but can't become Releasing"
                );
            }
        }
        assert!(!is_releasable(Ready));
        assert!(
            can_mark_broken(Deployed) && can_mark_broken(FailedTesting) && !can_mark_broken(Broken)
        );
        for status in NodeStatus::ALL.into_iter().filter(|s| can_mark_broken(*s)) {
            assert!(
                allowed(status, Broken) || is_releasable(status),
                "{status:?}: mark_broken must be a legal write (directly or after release)"
            );
        }
        assert_eq!(fixed_target(Deployed), Deployed);
        assert_eq!(fixed_target(Ready), Ready);
        assert_eq!(fixed_target(Commissioning), Ready);
        assert!(allowed(Broken, fixed_target(Deployed)) && allowed(Broken, fixed_target(Ready)));
    }

    #[test]
    fn commissioning_outcomes() {
        assert_eq!(commissioning_done(false, false), Ready);
        assert_eq!(commissioning_done(true, false), New);
        assert_eq!(commissioning_done(false, true), FailedCommissioning);
        assert_eq!(testing_return(FailedCommissioning), New);
        assert_eq!(testing_return(Deployed), Deployed);
        assert_eq!(testing_return(Broken), Ready);
        for previous in NodeStatus::ALL {
            let back = testing_return(previous);
            // The return write must be legal from Testing (or a no-op).
            assert!(
                allowed(Testing, back) || back == previous,
                "Testing -> {back:?}"
            );
        }
    }
}
