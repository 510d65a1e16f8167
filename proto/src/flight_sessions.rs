//! Flight's session-management messages (`Flight.proto`, "Session Management"), which arrow-rs 58
//! does not generate: the bodies of the `SetSessionOptions`, `GetSessionOptions` and
//! `CloseSession` actions and of their results, with the spec's field numbers. A server keeps the
//! session itself in the `arrow_flight_session_id` cookie ([`SESSION_COOKIE`]).

use std::collections::HashMap;

/// The cookie naming a client's server-side session, as the Arrow reference servers and the
/// JDBC/ADBC drivers' cookie middleware keep it.
pub const SESSION_COOKIE: &str = "arrow_flight_session_id";

/// Action type of [`SetSessionOptionsRequest`].
pub const SET_SESSION_OPTIONS_ACTION: &str = "SetSessionOptions";
/// Action type of [`GetSessionOptionsRequest`].
pub const GET_SESSION_OPTIONS_ACTION: &str = "GetSessionOptions";
/// Action type of [`CloseSessionRequest`].
pub const CLOSE_SESSION_ACTION: &str = "CloseSession";

/// One session option's value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionOptionValue {
    /// The value; none means "no value" (erase the option).
    #[prost(oneof = "session_option_value::OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<session_option_value::OptionValue>,
}

/// The variants of [`SessionOptionValue`].
pub mod session_option_value {
    /// A list of strings.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringListValue {
        /// The strings.
        #[prost(string, repeated, tag = "1")]
        pub values: Vec<String>,
    }

    /// One typed value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum OptionValue {
        /// A string.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// A boolean.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// A 64-bit integer.
        #[prost(sfixed64, tag = "3")]
        Int64Value(i64),
        /// A double.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// A list of strings.
        #[prost(message, tag = "5")]
        StringListValue(StringListValue),
    }
}

/// Sets options of the caller's session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsRequest {
    /// Option name to value.
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// The options that could not be set, each with why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsResult {
    /// Option name to its error.
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, set_session_options_result::Error>,
}

/// The parts of [`SetSessionOptionsResult`].
pub mod set_session_options_result {
    /// Why one option was not set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum ErrorValue {
        /// Protobuf's default; never sent.
        Unspecified = 0,
        /// No such option.
        InvalidName = 1,
        /// The option exists but the value is not one it takes.
        InvalidValue = 2,
        /// Anything else.
        Error = 3,
    }

    /// One option's error.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        /// What went wrong.
        #[prost(enumeration = "ErrorValue", tag = "1")]
        pub value: i32,
    }
}

/// Asks for every option of the caller's session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsRequest {}

/// The options of the caller's session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsResult {
    /// Option name to value.
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// Ends the caller's session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseSessionRequest {}

/// How closing went.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseSessionResult {
    /// A [`close_session_result::Status`].
    #[prost(enumeration = "close_session_result::Status", tag = "1")]
    pub status: i32,
}

/// The parts of [`CloseSessionResult`].
pub mod close_session_result {
    /// How closing went.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Status {
        /// Protobuf's default; never sent.
        Unspecified = 0,
        /// The session is gone.
        Closed = 1,
        /// The session is being closed.
        Closing = 2,
        /// The session cannot be closed.
        NotClosable = 3,
    }
}
