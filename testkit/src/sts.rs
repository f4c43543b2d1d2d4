//! An STS stand-in beside the S3 server: AssumeRole for one role, with the external ID its trust policy
//! asks for. With a role set up, the caller's own key may only assume the role; S3 itself answers only the
//! role's temporary key, as a bucket in another account does.

use async_trait::async_trait;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The temporary key AssumeRole hands out.
pub const ROLE_ACCESS_KEY: &str = "ASIASLUICEROLE";
pub const ROLE_SECRET_KEY: &str = "sluice-role-secret";
const ROLE_SESSION_TOKEN: &str = "sluice-role-session-token";

/// The role a test server lets its key pair assume.
#[derive(Clone, Debug)]
pub struct Role {
    pub arn: String,
    pub external_id: String,
}

/// Secret keys by access key: the caller's own pair and, with a role, the role's temporary pair.
pub(crate) struct Keys(pub HashMap<String, String>);

#[async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0
            .get(access_key)
            .map(|secret| SecretKey::from(secret.as_str()))
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))
    }
}

/// S3 operations take only the role's key.
pub(crate) struct OnlyTheRole;

#[async_trait]
impl S3Access for OnlyTheRole {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        match cx.credentials() {
            Some(credentials) if credentials.access_key == ROLE_ACCESS_KEY => Ok(()),
            _ => Err(s3_error!(AccessDenied, "only the assumed role may read this bucket")),
        }
    }
}

/// `POST /` with `Action=AssumeRole`.
pub(crate) struct AssumeRole {
    pub role: Role,
    pub calls: Arc<AtomicUsize>,
}

#[async_trait]
impl S3Route for AssumeRole {
    fn is_match(
        &self,
        method: &hyper::Method,
        uri: &hyper::Uri,
        headers: &hyper::HeaderMap,
        _: &mut hyper::http::Extensions,
    ) -> bool {
        method == hyper::Method::POST
            && uri.path() == "/"
            && headers
                .get(hyper::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"))
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let body = req.input.store_all_limited(1 << 16).await.map_err(|_| s3_error!(InvalidRequest))?;
        let form = decode_form(&String::from_utf8_lossy(&body));
        if form.get("Action").map(String::as_str) != Some("AssumeRole") {
            return Err(s3_error!(NotImplemented, "only AssumeRole is answered here"));
        }
        if form.get("RoleArn") != Some(&self.role.arn) {
            return Ok(access_denied("not authorized to perform sts:AssumeRole on this role"));
        }
        if form.get("ExternalId") != Some(&self.role.external_id) {
            return Ok(access_denied("the external ID does not match the role's trust policy"));
        }
        let session = form.get("RoleSessionName").cloned().unwrap_or_default();
        let xml = format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
             <Credentials><AccessKeyId>{ROLE_ACCESS_KEY}</AccessKeyId><SecretAccessKey>{ROLE_SECRET_KEY}</SecretAccessKey>\
             <SessionToken>{ROLE_SESSION_TOKEN}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
             <AssumedRoleUser><AssumedRoleId>AROASLUICE:{session}</AssumedRoleId><Arn>{}/{session}</Arn></AssumedRoleUser>\
             </AssumeRoleResult><ResponseMetadata><RequestId>sluice-test</RequestId></ResponseMetadata></AssumeRoleResponse>",
            self.role.arn
        );
        let mut response = S3Response::new(Body::from(xml));
        response
            .headers
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/xml"));
        Ok(response)
    }
}

/// STS's own error document (not S3's), so the client reads its code and message as from AWS.
fn access_denied(message: &str) -> S3Response<Body> {
    let xml = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>AccessDenied</Code><Message>{message}</Message></Error><RequestId>sluice-test</RequestId></ErrorResponse>"
    );
    let mut response = S3Response::new(Body::from(xml));
    response.status = Some(hyper::StatusCode::FORBIDDEN);
    response.headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/xml"));
    response
}

/// `application/x-www-form-urlencoded` into its fields.
fn decode_form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (percent_decode(key), percent_decode(value)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(byte) => {
                    out.push(byte);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
