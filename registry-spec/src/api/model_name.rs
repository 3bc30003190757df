//! `name` beside `model` in the model-management requests (show, delete,
//! create, pull, push): Ollama's `api/types.go` keeps both fields and its
//! handlers take `cmp.Or(req.Model, req.Name)`, so a client that sends both
//! (Open WebUI does) is answered for `model`, and `name` is the fallback
//! when `model` is absent or empty.
//!
//! The request types derive serde with `remote = "Self"` and get their
//! trait impls from [`model_or_name!`], which folds `name` into `model`
//! before the derived code sees the object.

use serde_json::Value;

/// Folds `name` into `model` unless `model` is a non-empty value already;
/// `name` is removed either way.
pub(crate) fn fold(v: &mut Value) {
    let Value::Object(m) = v else {
        return;
    };
    let Some(name) = m.remove("name") else {
        return;
    };
    let model_unset = match m.get("model") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if model_unset {
        m.insert("model".to_owned(), name);
    }
}

/// `Serialize` and `Deserialize` for a request type that derives them with
/// `#[serde(remote = "Self")]`, deserializing after [`fold`].
macro_rules! model_or_name {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                $crate::api::model_name::fold(&mut v);
                // The inherent `deserialize` is the one `remote = "Self"` derived.
                <$t>::deserialize(v).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }
    };
}

pub(crate) use model_or_name;
