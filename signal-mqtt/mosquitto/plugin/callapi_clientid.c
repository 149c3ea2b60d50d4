/*
 * callapi_clientid: a Mosquitto 2.x (plugin API v5) authentication plugin that binds the MQTT
 * client id to the authenticated user name, so that no user can take over another user's
 * session.
 *
 * Why: callapi devices connect with the documented, stable client id callapi-{user}-{device}
 * (docs/PROTOCOL.md, "MQTT transport"). Without this plugin any authenticated user could
 * connect with another user's client id; Mosquitto would then close that device's connection
 * (session takeover) and give its persistent session to the intruder, who resumes it (clean
 * session 0) or wipes it (clean session 1): the envelopes queued for the device never reach
 * it.
 *
 * The rule: a CONNECT with user name U is refused (CONNACK "not authorised") unless its client
 * id is exactly
 *
 *     "callapi-" escape(U) "-" REST
 *
 * where REST is non-empty and made only of ASCII letters, digits, '.' and '_', and escape() is
 * the escaping of callapi_signal_mqtt::client_id (signal-mqtt/src/topics.rs): ASCII letters,
 * digits and '.' stay as they are, every other byte (including '-' and '_') becomes '_' and two
 * lowercase hex digits. escape(U) never contains '-', so the user part of a client id is
 * unambiguous and no user name can produce a prefix of another user's client ids.
 *
 * A CONNECT that passes is deferred (MOSQ_ERR_PLUGIN_DEFER) to the next authentication
 * callback: the password_file check. Mosquitto 2.0 registers plugin callbacks before the
 * password file's and stops at the first answer that is not a deferral, so both must pass.
 *
 * Build (Debian: mosquitto-dev ships the plugin headers, libmosquitto-dev mosquitto.h):
 *     cc -shared -fPIC -O2 -Wall -o callapi_clientid.so callapi_clientid.c
 * Load with a `plugin /path/to/callapi_clientid.so` line in the broker's main configuration
 * file (see ../README.md). Mosquitto loads plugins at start only, not on a reload.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

static mosquitto_plugin_id_t *plugin_id = NULL;

static const char PREFIX[] = "callapi-";

/* The bytes that escape() keeps as they are. */
static bool is_kept(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.';
}

/*
 * Matches escape(user) at the start of id. Returns the rest of id after it, or NULL when id
 * does not start with escape(user).
 */
static const char *skip_escaped(const char *id, const char *user)
{
	static const char hex[] = "0123456789abcdef";

	for(const unsigned char *u = (const unsigned char *)user; *u; u++){
		if(is_kept(*u)){
			if(*id != (char)*u) return NULL;
			id++;
		}else{
			if(id[0] != '_' || id[1] != hex[*u >> 4] || id[2] != hex[*u & 0x0f]) return NULL;
			id += 3;
		}
	}
	return id;
}

/* Whether client_id is "callapi-" escape(user) "-" followed by a non-empty [A-Za-z0-9._]*. */
static bool client_id_is_bound(const char *client_id, const char *user)
{
	const char *rest;

	if(strncmp(client_id, PREFIX, sizeof(PREFIX) - 1) != 0) return false;
	rest = skip_escaped(client_id + sizeof(PREFIX) - 1, user);
	if(rest == NULL || *rest != '-') return false;
	rest++;
	if(*rest == '\0') return false;
	for(; *rest; rest++){
		if(!is_kept((unsigned char)*rest) && *rest != '_') return false;
	}
	return true;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);

	(void)event;
	(void)userdata;

	if(ed->username == NULL || client_id == NULL || !client_id_is_bound(client_id, ed->username)){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				"callapi_clientid: refused client id \"%s\" for user \"%s\": "
				"it must be callapi-{user}-{device} of that user",
				client_id ? client_id : "", ed->username ? ed->username : "(none)");
		return MOSQ_ERR_AUTH;
	}
	/* The client id is the user's own: let the password file decide. */
	return MOSQ_ERR_PLUGIN_DEFER;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	(void)supported_version_count;
	(void)supported_versions;
	return 5;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;

	plugin_id = identifier;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;

	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
}
