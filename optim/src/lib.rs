//! Optimisers, learning-rate schedules, gradient clipping and stopping criteria.
