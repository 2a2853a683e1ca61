// Initiates the replica set of the real-server tests, then waits until it has one primary and
// two secondaries. Run, connected to the first member, by scripts/mongodb-replset.sh and by the
// init service of docker-compose.yml, with `mongosh` (MongoDB 5.0 and later) or the legacy
// `mongo` shell (the only one in the 4.4 images): plain ES5, and every command goes through
// run(), since the legacy shell returns {ok: 0} where mongosh throws. Running it again on a
// running set only waits.
var REPLICA_SET = "rs0";
var MEMBERS = ["127.0.0.1:27017", "127.0.0.1:27018", "127.0.0.1:27019"];
var DEADLINE = Date.now() + 120 * 1000;
var ALREADY_INITIALIZED = 23;
var PRIMARY = 1;
var SECONDARY = 2;

function run(command) {
  try {
    return db.adminCommand(command);
  } catch (error) {
    return { ok: 0, code: error.code, errmsg: String(error) };
  }
}

function show(reply) {
  try {
    return JSON.stringify(reply);
  } catch (error) {
    return String(reply);
  }
}

function giveUp(message, reply) {
  print("mongodb-replset-init: " + message + ": " + show(reply));
  quit(1);
}

var config = { _id: REPLICA_SET, members: [] };
for (var i = 0; i < MEMBERS.length; i++) {
  config.members.push({ _id: i, host: MEMBERS[i] });
}

// The quorum check of replSetInitiate fails until every member listens: try again until then.
for (;;) {
  var initiated = run({ replSetInitiate: config });
  if (initiated.ok == 1 || initiated.code == ALREADY_INITIALIZED) {
    break;
  }
  if (Date.now() > DEADLINE) {
    giveUp("replSetInitiate failed", initiated);
  }
  sleep(1000);
}

for (;;) {
  var status = run({ replSetGetStatus: 1 });
  if (status.ok == 1) {
    var primaries = 0;
    var secondaries = 0;
    for (var j = 0; j < status.members.length; j++) {
      if (status.members[j].state == PRIMARY) {
        primaries++;
      } else if (status.members[j].state == SECONDARY) {
        secondaries++;
      }
    }
    if (status.set == REPLICA_SET && primaries == 1 && secondaries == MEMBERS.length - 1) {
      print("mongodb-replset-init: " + REPLICA_SET + " has a primary and " + secondaries +
        " secondaries");
      break;
    }
  }
  if (Date.now() > DEADLINE) {
    giveUp("no primary and secondaries in time", status);
  }
  sleep(500);
}
