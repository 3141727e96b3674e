//! The list envelope every API answers for collections.

use serde::Serialize;
use uuid::Uuid;

/// A list: `{"object": "list", "data": [...]}`, plus the cursor of the
/// next page when the list is paged.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    /// Always `list`.
    #[schema(value_type = String, example = "list")]
    pub object: &'static str,
    pub data: Vec<T>,
    /// Whether another page follows (paged lists only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
    /// Pass as `after` to get the next page (paged lists only; `null` on
    /// the last page).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub next_after: Option<Option<Uuid>>,
}

impl<T> List<T> {
    /// A whole list of `items`, each converted to its view.
    pub fn of<R: Into<T>>(items: Vec<R>) -> List<T> {
        List {
            object: "list",
            data: items.into_iter().map(Into::into).collect(),
            has_more: None,
            next_after: None,
        }
    }

    /// One page of a paged list, and the cursor of the next one.
    pub fn page<R: Into<T>>(items: Vec<R>, next: Option<Uuid>) -> List<T> {
        List {
            has_more: Some(next.is_some()),
            next_after: Some(next),
            ..List::of(items)
        }
    }
}
