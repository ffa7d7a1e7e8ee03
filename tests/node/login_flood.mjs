// node-opcua client guessing a user's password at linecheck's OPC UA server.
//
// Run by tests/opcua/test_node_login_flood.py:  node login_flood.mjs '<json options>'
// One secure channel (Basic256Sha256 SignAndEncrypt), then opt.guesses sessions with wrong
// passwords, then one with the right password. Prints one line "RESULT <json>": the first line
// of each refusal's message, and the right password's outcome. Diagnostics go to stderr.
import { UserTokenType } from "node-opcua-client";
import { makeClient, options } from "./connection.mjs";

const opt = options();
const log = (...a) => console.error("[login_flood]", ...a);

async function tryLogin(client, password) {
    try {
        const session = await client.createSession({ type: UserTokenType.UserName, userName: opt.user, password });
        await session.close();
        return "accepted";
    } catch (err) {
        return String(err.message).split("\n")[0];
    }
}

async function main() {
    const client = await makeClient(opt, "linecheck-test-guesser");
    await client.connect(opt.endpoint);
    const out = { guesses: [], right: null };
    try {
        for (let i = 0; i < opt.guesses; i++) out.guesses.push(await tryLogin(client, `guess-${i}`));
        out.right = await tryLogin(client, opt.password);
    } finally {
        await client.disconnect();
    }
    log("done");
    return "RESULT " + JSON.stringify(out) + "\n";
}

main().then(
    (line) => process.stdout.write(line, () => process.exit(0)),
    (err) => {
        log("failed:", err && err.stack ? err.stack : err);
        process.exit(1);
    },
);
