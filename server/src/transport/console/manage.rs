//! The console's forms that change something: creating, rotating, disabling and deleting
//! integrations, replaying a webhook delivery or an event, retrying an ingest. Each takes the
//! session's CSRF token and is refused from another site; the domain checks the key's scopes.

use std::collections::BTreeMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{CsrfForm, Session, html, page, page_error, pages, refused_form};
use crate::crypto::SecretValue;
use crate::domain::console::csrf_token;
use crate::domain::{Domain, parse_id};
use crate::error::Error;
use crate::model::integrations::{
    IntegrationOptions, IntegrationStatus, NewIntegration, Provider, WebhookAuthType,
};

/// After a form: to the page `result` names, or the page of its error.
fn redirect(result: Result<String, Error>) -> Response {
    match result {
        Ok(location) => Redirect::to(&location).into_response(),
        Err(error) => page_error(&error),
    }
}

/// Hours a rotated secret stays valid unless the form says otherwise.
const DEFAULT_GRACE_HOURS: i64 = 24;

/// The longest grace the form takes: a week.
const MAX_GRACE_HOURS: i64 = 168;

/// The provider and auth type a new integration's form is for.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Chosen {
    provider: String,
    auth_type: String,
}

/// The provider and auth type of `chosen`, defaulting to Twilio and the provider's first.
fn chosen_kind(provider: &str, auth_type: &str) -> Result<(Provider, WebhookAuthType), Error> {
    let provider = match provider {
        "" => Provider::Twilio,
        name => {
            Provider::parse(name).ok_or_else(|| Error::invalid("provider", "unknown provider"))?
        }
    };
    let auth_type = match auth_type {
        "" => provider.default_auth_type(),
        name => WebhookAuthType::parse(name)
            .filter(|auth_type| provider.auth_types().contains(auth_type))
            .ok_or_else(|| {
                Error::invalid("auth_type", format!("not an auth type of {}", provider.as_str()))
            })?,
    };
    Ok((provider, auth_type))
}

/// The form to create an integration, with the provider's setup steps beside it.
pub(super) async fn new_integration(
    State(domain): State<Domain>,
    session: Session,
    Query(chosen): Query<Chosen>,
) -> Response {
    let result = async {
        session.principal.require(crate::model::auth::Scope::Admin)?;
        let kind = chosen_kind(&chosen.provider, &chosen.auth_type)?;
        let projects = domain.list_projects(&session.principal).await?;
        Ok::<_, Error>((kind, projects))
    }
    .await;
    let csrf = csrf_token(&session.token);
    page(result.map(|((provider, auth_type), projects)| {
        pages::new_integration(&csrf, provider, auth_type, &projects, &pages::Entered::default())
    }))
}

/// Creates an integration from the form: fields `project`, `provider`, `auth_type`,
/// `display_name`, `options` (JSON, optional) and `secret.<name>` per secret.
pub(super) async fn create_integration(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| field_of(&fields, name);
    if let Some(refused) = refused_form(&headers, &session.token, field("csrf")) {
        return refused;
    }
    let (provider, auth_type) = match chosen_kind(field("provider"), field("auth_type")) {
        Ok(kind) => kind,
        Err(error) => return page_error(&error),
    };
    let entered = pages::Entered {
        project: field("project").to_owned(),
        display_name: field("display_name").to_owned(),
        options: field("options").to_owned(),
        problem: None,
    };
    let created = async {
        let options = match entered.options.as_str() {
            "" => IntegrationOptions::default(),
            json => serde_json::from_str(json).map_err(|error| {
                Error::invalid("options", format!("not valid options: {error}"))
            })?,
        };
        let integration = NewIntegration {
            project_id: parse_id("project", &entered.project)?,
            provider: Some(provider),
            display_name: entered.display_name.clone(),
            auth_type: Some(auth_type),
            secrets: secrets_of(&fields),
            options,
        };
        domain.create_integration(&session.principal, integration).await
    }
    .await;
    match created {
        Ok(integration) => {
            Redirect::to(&format!("/console/integrations/{}?created=1", integration.id))
                .into_response()
        }
        Err(error) if error.code() == crate::ErrorCode::InvalidArgument => {
            let projects = domain.list_projects(&session.principal).await.unwrap_or_default();
            let entered = pages::Entered { problem: Some(error.public_message()), ..entered };
            let csrf = csrf_token(&session.token);
            html(
                StatusCode::BAD_REQUEST,
                pages::new_integration(&csrf, provider, auth_type, &projects, &entered),
            )
        }
        Err(error) => page_error(&error),
    }
}

/// A form's field `name`, trimmed; empty when absent.
fn field_of<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.trim())
}

/// The `secret.<name>` fields of a form, empty ones left out (the domain names those missing).
fn secrets_of(fields: &[(String, String)]) -> BTreeMap<String, SecretValue> {
    fields
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("secret.")?;
            (!value.is_empty()).then(|| (name.to_owned(), SecretValue::new(value.clone())))
        })
        .collect()
}

/// Replaces an integration's secrets (`secret.<name>` fields), the previous ones valid for
/// `grace_hours` more.
pub(super) async fn rotate_secrets(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| field_of(&fields, name);
    if let Some(refused) = refused_form(&headers, &session.token, field("csrf")) {
        return refused;
    }
    let rotated = async {
        let id = parse_id("id", &id)?;
        let grace = match field("grace_hours") {
            "" => DEFAULT_GRACE_HOURS,
            hours => hours
                .parse::<i64>()
                .ok()
                .filter(|hours| (0..=MAX_GRACE_HOURS).contains(hours))
                .ok_or_else(|| {
                    Error::invalid("grace_hours", format!("must be 0 to {MAX_GRACE_HOURS} hours"))
                })?,
        };
        let grace = Some(chrono::Duration::hours(grace));
        domain.rotate_secrets(&session.principal, id, secrets_of(&fields), grace).await
    }
    .await;
    redirect(
        rotated.map(|integration| format!("/console/integrations/{}?rotated=1", integration.id)),
    )
}

#[derive(Deserialize)]
pub(super) struct StatusForm {
    csrf: String,
    status: String,
}

/// Enables or disables an integration.
pub(super) async fn integration_status(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> Response {
    if let Some(refused) = refused_form(&headers, &session.token, &form.csrf) {
        return refused;
    }
    let changed = async {
        let status = IntegrationStatus::parse(&form.status)
            .ok_or_else(|| Error::invalid("status", "must be active or disabled"))?;
        domain.set_integration_status(&session.principal, parse_id("id", &id)?, status).await
    }
    .await;
    redirect(changed.map(|integration| format!("/console/integrations/{}", integration.id)))
}

#[derive(Deserialize)]
pub(super) struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: Option<String>,
}

/// Deletes an integration once the form's box saying so is ticked.
pub(super) async fn delete_integration(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    if let Some(refused) = refused_form(&headers, &session.token, &form.csrf) {
        return refused;
    }
    let deleted = async {
        let id = parse_id("id", &id)?;
        if form.confirm.is_none() {
            return Err(Error::invalid("confirm", "tick the box to delete the integration"));
        }
        domain.delete_integration(&session.principal, id).await
    }
    .await;
    redirect(deleted.map(|()| "/console/integrations".to_owned()))
}

/// Runs a kept webhook delivery through admission again; the replay is the log's newest row.
pub(super) async fn replay_delivery(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Path((id, delivery_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refused_form(&headers, &session.token, &form.csrf) {
        return refused;
    }
    let replayed = async {
        let id = parse_id("id", &id)?;
        let delivery_id = parse_id("delivery_id", &delivery_id)?;
        crate::domain::webhooks::replay(&domain, &session.principal, id, delivery_id).await
    }
    .await;
    redirect(replayed.map(|delivery| {
        format!("/console/integrations/{}?replayed={}", delivery.integration_id, delivery.id)
    }))
}

/// Queues a failed or dead ingest again.
pub(super) async fn retry_ingest(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refused_form(&headers, &session.token, &form.csrf) {
        return refused;
    }
    let retried = match parse_id("id", &id) {
        Ok(id) => domain.retry_ingest(&session.principal, id).await,
        Err(error) => Err(error),
    };
    redirect(retried.map(|_| "/console/operations".to_owned()))
}

/// Sends one event to an endpoint again (the same `webhook-id`, a fresh schedule).
pub(super) async fn replay_event(
    State(domain): State<Domain>,
    session: Session,
    headers: HeaderMap,
    Path((id, event_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refused_form(&headers, &session.token, &form.csrf) {
        return refused;
    }
    let replayed = async {
        let id = parse_id("id", &id)?;
        let replay = crate::model::events::Replay::Event(event_id);
        domain.replay_events(&session.principal, id, replay).await?;
        Ok::<_, Error>(id)
    }
    .await;
    redirect(replayed.map(|id| format!("/console/endpoints/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_a_kind_of_the_provider() {
        assert_eq!(
            chosen_kind("", "").unwrap(),
            (Provider::Twilio, WebhookAuthType::TwilioSignature)
        );
        assert_eq!(chosen_kind("vapi", "hmac").unwrap(), (Provider::Vapi, WebhookAuthType::Hmac));
        let error = chosen_kind("twilio", "hmac").unwrap_err();
        assert_eq!(error.field_violations()[0].field, "auth_type");
        assert_eq!(chosen_kind("skype", "").unwrap_err().field_violations()[0].field, "provider");
    }

    #[test]
    fn secrets_are_the_named_fields_given() {
        let fields = vec![
            ("csrf".to_owned(), "x".to_owned()),
            ("secret.api_key".to_owned(), "key".to_owned()),
            ("secret.api_secret".to_owned(), String::new()),
        ];
        let secrets = secrets_of(&fields);
        assert_eq!(secrets.keys().collect::<Vec<_>>(), ["api_key"]);
        assert_eq!(secrets["api_key"].expose(), "key");
    }
}
