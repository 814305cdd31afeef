//! Retries: bounded exponential backoff with jitter, or the server's `Retry-After`.

use std::time::{Duration, SystemTime};

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per operation, the first included.
    pub attempts: u32,
    /// The delay before the first retry; it doubles each time.
    pub initial: Duration,
    /// The longest delay between two tries.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 6, initial: Duration::from_millis(200), max: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): doubling, capped, and
    /// spread by ±50% so that parallel transfers do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        exp.mul_f64(0.5 + fastrand::f64())
    }
}

/// An error that may be worth another try.
pub trait Transient {
    /// True for failures worth retrying: no connection, a dropped transfer,
    /// a 5xx, or 429 Too Many Requests.
    fn is_transient(&self) -> bool;
    /// The wait the server asked for, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The longest `Retry-After` honoured: a server asking for more is waited on
/// this long, then tried again, so that a misconfigured one cannot stall CI for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Runs `op` until it succeeds, fails for good, or runs out of attempts.
/// Transient failures wait for the server's `Retry-After`, else back off.
/// Whatever is retried this way must be idempotent.
pub async fn retrying<T, E, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if attempt + 1 < policy.attempts && e.is_transient() => {
                let delay = e.retry_after().unwrap_or_else(|| policy.backoff(attempt));
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers("86400")), Some(MAX_RETRY_AFTER));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        let wait = retry_after(&headers(&soon)).unwrap();
        assert!(wait > Duration::from_secs(7) && wait <= Duration::from_secs(10), "{wait:?}");
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[derive(Debug)]
    struct Flaky(bool);
    impl Transient for Flaky {
        fn is_transient(&self) -> bool {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(Duration::from_millis(1))
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let policy = RetryPolicy { attempts: 4, initial: Duration::from_millis(1), max: Duration::from_millis(2) };
        let mut calls = 0;
        let r: Result<(), Flaky> = retrying(&policy, || {
            calls += 1;
            async { Err(Flaky(true)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 4);
        let mut calls = 0;
        let r: Result<(), Flaky> = retrying(&policy, || {
            calls += 1;
            async { Err(Flaky(false)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
