//! Deterministic ids.

use uuid::Uuid;

/// Namespace of message ids (a fixed random UUID; never change it).
const MESSAGE_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_93b7_4d1a_8e55_0b2f_c7d3_9a41);

/// The id of a message is a UUIDv5 of `(user_id, client_msg_id)`, so a retried `send`
/// (same user, same client id) is the same message everywhere: the bus deduplicates
/// on it and the database's primary key refuses a second row.
pub fn message_id(user_id: Uuid, client_msg_id: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + client_msg_id.len());
    name.extend_from_slice(user_id.as_bytes());
    name.extend_from_slice(client_msg_id.as_bytes());
    Uuid::new_v5(&MESSAGE_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_user_and_client_id_give_the_same_message_id() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(message_id(a, "c1"), message_id(a, "c1"));
        assert_ne!(message_id(a, "c1"), message_id(a, "c2"));
        assert_ne!(message_id(a, "c1"), message_id(b, "c1"));
    }
}
