//! `GET|PATCH /users/me`: the caller's ringbox user. Only `display_name` may be
//! changed here (other fields are `validation_error`s naming them); users are created
//! with the native `POST /v1/users` (e-mail usernames are accepted).

use serde_json::{json, Value};

use super::{core_error, json_object, ok, only_fields, opt_string};
use crate::core::users::UserUpdate;
use crate::http::request::{Ctx, HandlerResult};
use crate::store::UserRecord;
use crate::util::time::rfc3339_ms;

/// A user as the seed's clients read it.
pub(super) fn user_json(u: &UserRecord, quota_default: Option<u64>) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "email": u.username.contains('@').then_some(u.username.as_str()),
        "display_name": u.display_name,
        "role": u.role.as_str(),
        "created_at": rfc3339_ms(u.created_at_ms),
        "usage": {
            "bytes": u.usage_bytes,
            "objects": u.object_count,
            "quota_bytes": u.quota_bytes.or(quota_default),
        },
    })
}

/// `GET /users/me`
pub async fn me(ctx: Ctx<'_>) -> HandlerResult {
    let u = ctx.svc.me(&ctx.req.caller).map_err(core_error)?;
    ok(user_json(&u, ctx.svc.settings.default_quota))
}

/// `PATCH /users/me` `{"display_name"}` (`null` clears it).
pub async fn patch_me(mut ctx: Ctx<'_>) -> HandlerResult {
    let body = json_object(&mut ctx, false).await?;
    only_fields(&body, &["display_name"])?;
    let display_name = match body.get("display_name") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => Some(opt_string(&body, "display_name", 128)?),
    };
    let id = ctx
        .req
        .caller
        .user()
        .map(str::to_string)
        .unwrap_or_default();
    let u = ctx
        .svc
        .update_user(
            &ctx.req.caller,
            &id,
            UserUpdate {
                display_name,
                ..UserUpdate::default()
            },
        )
        .await
        .map_err(core_error)?;
    ok(user_json(&u, ctx.svc.settings.default_quota))
}
