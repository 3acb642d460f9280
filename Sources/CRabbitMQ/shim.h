// rabbitmq-c 0.11 (Debian's librabbitmq-dev) ships flat headers.
#ifndef FERRY_CRABBITMQ_SHIM_H
#define FERRY_CRABBITMQ_SHIM_H
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

/// amqp_login is variadic; Swift cannot call it. PLAIN is the only SASL method Ferry uses.
static inline amqp_rpc_reply_t ferry_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                      int channel_max, int frame_max, int heartbeat,
                                                      const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/// amqp_login_with_properties is variadic too; the properties name the connection in the management UI.
static inline amqp_rpc_reply_t ferry_amqp_login_plain_with_properties(amqp_connection_state_t state, const char *vhost,
                                                                      int channel_max, int frame_max, int heartbeat,
                                                                      const amqp_table_t *properties,
                                                                      const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

// The method numbers and property flags are macros with casts, which Swift does not import.
static const amqp_method_number_t FERRY_BASIC_DELIVER = AMQP_BASIC_DELIVER_METHOD;
static const amqp_method_number_t FERRY_BASIC_ACK = AMQP_BASIC_ACK_METHOD;
static const amqp_method_number_t FERRY_BASIC_NACK = AMQP_BASIC_NACK_METHOD;
static const amqp_method_number_t FERRY_BASIC_RETURN = AMQP_BASIC_RETURN_METHOD;
static const amqp_method_number_t FERRY_BASIC_CANCEL = AMQP_BASIC_CANCEL_METHOD;
static const amqp_method_number_t FERRY_CHANNEL_CLOSE = AMQP_CHANNEL_CLOSE_METHOD;
static const amqp_method_number_t FERRY_CHANNEL_CLOSE_OK = AMQP_CHANNEL_CLOSE_OK_METHOD;
static const amqp_method_number_t FERRY_CONNECTION_CLOSE = AMQP_CONNECTION_CLOSE_METHOD;
static const amqp_method_number_t FERRY_CONNECTION_CLOSE_OK = AMQP_CONNECTION_CLOSE_OK_METHOD;
static const amqp_method_number_t FERRY_CONNECTION_BLOCKED = AMQP_CONNECTION_BLOCKED_METHOD;
static const amqp_method_number_t FERRY_CONNECTION_UNBLOCKED = AMQP_CONNECTION_UNBLOCKED_METHOD;

static const amqp_flags_t FERRY_FLAG_CONTENT_TYPE = AMQP_BASIC_CONTENT_TYPE_FLAG;
static const amqp_flags_t FERRY_FLAG_HEADERS = AMQP_BASIC_HEADERS_FLAG;
static const amqp_flags_t FERRY_FLAG_DELIVERY_MODE = AMQP_BASIC_DELIVERY_MODE_FLAG;
static const amqp_flags_t FERRY_FLAG_CORRELATION_ID = AMQP_BASIC_CORRELATION_ID_FLAG;
static const amqp_flags_t FERRY_FLAG_MESSAGE_ID = AMQP_BASIC_MESSAGE_ID_FLAG;
static const amqp_flags_t FERRY_FLAG_TIMESTAMP = AMQP_BASIC_TIMESTAMP_FLAG;
static const amqp_flags_t FERRY_FLAG_TYPE = AMQP_BASIC_TYPE_FLAG;

static const uint8_t FERRY_FRAME_METHOD = AMQP_FRAME_METHOD;
static const uint8_t FERRY_DELIVERY_PERSISTENT = AMQP_DELIVERY_PERSISTENT;
#endif
