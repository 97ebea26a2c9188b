//! The asker's judgment of an answer, stored against its trace and principal (`user_feedback`).

use ops_proto::v1::{FeedbackCategory, FeedbackRating, FeedbackRequest, FeedbackResponse};

use super::{TraceError, read};
use crate::storage::{Db, unix_micros};

/// Longest comment kept, in characters.
const MAX_COMMENT_CHARS: usize = 2000;

fn invalid(field: &str, message: impl Into<String>) -> TraceError {
    TraceError::InvalidArgument {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// How ratings are stored and filtered: `positive`, `negative`.
pub fn rating_slug(rating: FeedbackRating) -> Option<String> {
    (rating != FeedbackRating::Unspecified)
        .then(|| super::enum_slug(rating.as_str_name(), "FEEDBACK_RATING_"))
}

/// Stores one feedback on a trace of the caller's tenant.
pub async fn record(
    db: &Db,
    tenant: &str,
    principal: &str,
    req: &FeedbackRequest,
) -> Result<FeedbackResponse, TraceError> {
    let rating = FeedbackRating::try_from(req.rating)
        .ok()
        .and_then(rating_slug)
        .ok_or_else(|| {
            invalid(
                "rating",
                "rate the answer: FEEDBACK_RATING_POSITIVE or FEEDBACK_RATING_NEGATIVE",
            )
        })?;
    if req.score > 5 {
        return Err(invalid(
            "score",
            format!(
                "{} is not a score: expected 1 to 5, or 0 for none",
                req.score
            ),
        ));
    }
    let category = match FeedbackCategory::try_from(req.category) {
        Ok(FeedbackCategory::Unspecified) => String::new(),
        Ok(c) => super::enum_slug(c.as_str_name(), "FEEDBACK_CATEGORY_"),
        Err(_) => {
            return Err(invalid(
                "category",
                format!(
                    "{} is not a category: expected WRONG_DATA, WRONG_UNDERSTANDING, SLOW or OTHER",
                    req.category
                ),
            ));
        }
    };
    let chars = req.comment.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(invalid(
            "comment",
            format!("{chars} characters: at most {MAX_COMMENT_CHARS}"),
        ));
    }
    // The trace must be the caller's tenant's (another tenant's id reads as not found).
    read::get(db, tenant, &req.trace_id).await?;
    let feedback_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO user_feedback (feedback_id, tenant_id, trace_id, principal, rating, comment, created_at, score, category) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&feedback_id)
    .bind(tenant)
    .bind(&req.trace_id)
    .bind(principal)
    .bind(&rating)
    .bind(&req.comment)
    .bind(unix_micros())
    .bind((req.score > 0).then_some(i64::from(req.score)))
    .bind(&category)
    .execute(db.pool())
    .await?;
    Ok(FeedbackResponse { feedback_id })
}
