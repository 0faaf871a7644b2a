BEGIN TRANSACTION;
CREATE TABLE executions (
	seq INTEGER NOT NULL, 
	arn VARCHAR(256) NOT NULL, 
	task_arn VARCHAR(256) NOT NULL, 
	agent_arn VARCHAR(256) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	job_status VARCHAR(16) NOT NULL, 
	doc TEXT NOT NULL, 
	PRIMARY KEY (seq), 
	UNIQUE (arn)
);
INSERT INTO "executions" VALUES(1,'arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7/execution/exec-9663472885d6d8d42','arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7','arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e','SUCCESS','SUCCEEDED','{"AgentArn":"arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e","BytesCompressed":29,"BytesTransferred":29,"BytesWritten":29,"EndTime":1796164805.4946854,"EstimatedBytesToTransfer":29,"EstimatedFilesToDelete":0,"EstimatedFilesToTransfer":2,"Excludes":[],"FilesDeleted":0,"FilesFailed":{"Delete":0,"Prepare":0,"Transfer":0,"Verify":0},"FilesListed":{"AtDestinationForDelete":0,"AtSource":1},"FilesPrepared":2,"FilesSkipped":0,"FilesTransferred":2,"FilesVerified":2,"History":[["LAUNCHING",1796164805.4340298],["SUCCESS",1796164805.4946854]],"Includes":[],"Job":{"document":{"Destination":{"LocationArn":"arn:aws:datasync:us-east-1:111122223333:location/loc-b2bac14ce247fe21f","LocationType":"SMB","LocationUri":"smb://127.0.0.1/tmp/old-gen/root/dst/","ServerHostname":"127.0.0.1","Subdirectory":"/tmp/old-gen/root/dst"},"Excludes":[],"Includes":[],"Options":{"Atime":"BEST_EFFORT","BytesPerSecond":-1,"Gid":"INT_VALUE","LogLevel":"OFF","Mtime":"PRESERVE","ObjectMetadata":"PRESERVE","ObjectTags":"PRESERVE","OverwriteMode":"ALWAYS","PosixPermissions":"PRESERVE","PreserveDeletedFiles":"PRESERVE","PreserveDevices":"NONE","SecurityDescriptorCopyFlags":"OWNER_DACL","TaskQueueing":"ENABLED","TransferMode":"CHANGED","Uid":"INT_VALUE","VerifyMode":"ONLY_FILES_TRANSFERRED"},"Source":{"LocationArn":"arn:aws:datasync:us-east-1:111122223333:location/loc-a3f7e2a0525424089","LocationType":"NFS","LocationUri":"nfs://localhost/tmp/old-gen/root/src/","ServerHostname":"localhost","Subdirectory":"/tmp/old-gen/root/src"},"TaskArn":"arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7","TaskExecutionArn":"arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7/execution/exec-9663472885d6d8d42","TaskMode":"BASIC"},"executionNumber":1,"lastUpdatedAt":1796164805,"queuedAt":1796164805,"startedAt":1796164805,"status":"SUCCEEDED","statusDetails":{"agent:session":"c7c39b68a2e6fd38","counters":"{\"BytesCompressed\":29,\"BytesTransferred\":29,\"BytesWritten\":29,\"EstimatedBytesToTransfer\":29,\"EstimatedFilesToDelete\":0,\"EstimatedFilesToTransfer\":2,\"FilesDeleted\":0,\"FilesFailed\":{\"Delete\":0,\"Prepare\":0,\"Transfer\":0,\"Verify\":0},\"FilesListed\":{\"AtDestinationForDelete\":0,\"AtSource\":1},\"FilesPrepared\":2,\"FilesSkipped\":0,\"FilesTransferred\":2,\"FilesVerified\":2}","phase":"SUCCESS","result":"{\"PrepareDuration\":0,\"PrepareStatus\":\"SUCCESS\",\"TotalDuration\":13,\"TransferDuration\":1,\"TransferStatus\":\"SUCCESS\",\"VerifyDuration\":11,\"VerifyStatus\":\"SUCCESS\"}"},"versionNumber":3},"LaunchTime":1796164805.4642987,"Options":{"Atime":"BEST_EFFORT","BytesPerSecond":-1,"Gid":"INT_VALUE","LogLevel":"OFF","Mtime":"PRESERVE","ObjectMetadata":"PRESERVE","ObjectTags":"PRESERVE","OverwriteMode":"ALWAYS","PosixPermissions":"PRESERVE","PreserveDeletedFiles":"PRESERVE","PreserveDevices":"NONE","SecurityDescriptorCopyFlags":"OWNER_DACL","TaskQueueing":"ENABLED","TransferMode":"CHANGED","Uid":"INT_VALUE","VerifyMode":"ONLY_FILES_TRANSFERRED"},"Result":{"PrepareDuration":0,"PrepareStatus":"SUCCESS","TotalDuration":13,"TransferDuration":1,"TransferStatus":"SUCCESS","VerifyDuration":11,"VerifyStatus":"SUCCESS"},"StartTime":1796164805.4340298,"Status":"SUCCESS","TaskArn":"arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7","TaskExecutionArn":"arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7/execution/exec-9663472885d6d8d42","TaskMode":"BASIC","_FiltersKey":"[[], []]"}');
CREATE TABLE meta (
	"key" VARCHAR(128) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "meta" VALUES('embedded_agent','arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e');
CREATE TABLE resources (
	arn VARCHAR(256) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	created FLOAT NOT NULL, 
	doc TEXT NOT NULL, 
	PRIMARY KEY (arn)
);
INSERT INTO "resources" VALUES('arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e','agent',1.79616480462426805495e+09,'{"AgentArn":"arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e","CreationTime":1796164804.624268,"EndpointType":"PUBLIC","LastConnectionTime":1796164804.624268,"Name":"embedded","Platform":{"Version":"datasync-local-0.1.0"},"Roots":["/tmp/old-gen/root"]}');
INSERT INTO "resources" VALUES('arn:aws:datasync:us-east-1:111122223333:location/loc-a3f7e2a0525424089','location',1.79616480536151337625e+09,'{"CreationTime":1796164805.3615134,"LocationArn":"arn:aws:datasync:us-east-1:111122223333:location/loc-a3f7e2a0525424089","LocationType":"NFS","LocationUri":"nfs://localhost/tmp/old-gen/root/src/","OnPremConfig":{"AgentArns":["arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e"]},"ServerHostname":"localhost","Subdirectory":"/tmp/old-gen/root/src","_Agents":["arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e"]}');
INSERT INTO "resources" VALUES('arn:aws:datasync:us-east-1:111122223333:location/loc-b2bac14ce247fe21f','location',1.79616480539090490344e+09,'{"AgentArns":["arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e"],"CreationTime":1796164805.390905,"LocationArn":"arn:aws:datasync:us-east-1:111122223333:location/loc-b2bac14ce247fe21f","LocationType":"SMB","LocationUri":"smb://127.0.0.1/tmp/old-gen/root/dst/","ServerHostname":"127.0.0.1","Subdirectory":"/tmp/old-gen/root/dst","_Agents":["arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e"]}');
INSERT INTO "resources" VALUES('arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7','task',1796164805.41509,'{"CreationTime":1796164805.41509,"CurrentTaskExecutionArn":"arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7/execution/exec-9663472885d6d8d42","DestinationLocationArn":"arn:aws:datasync:us-east-1:111122223333:location/loc-b2bac14ce247fe21f","Excludes":[],"Includes":[],"Name":"first-release","Options":{"Atime":"BEST_EFFORT","BytesPerSecond":-1,"Gid":"INT_VALUE","LogLevel":"OFF","Mtime":"PRESERVE","ObjectMetadata":"PRESERVE","ObjectTags":"PRESERVE","OverwriteMode":"ALWAYS","PosixPermissions":"PRESERVE","PreserveDeletedFiles":"PRESERVE","PreserveDevices":"NONE","SecurityDescriptorCopyFlags":"OWNER_DACL","TaskQueueing":"ENABLED","TransferMode":"CHANGED","Uid":"INT_VALUE","VerifyMode":"ONLY_FILES_TRANSFERRED"},"SourceLocationArn":"arn:aws:datasync:us-east-1:111122223333:location/loc-a3f7e2a0525424089","TaskArn":"arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7","TaskMode":"BASIC","_Agent":"arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e"}');
CREATE TABLE tags (
	arn VARCHAR(256) NOT NULL, 
	"key" VARCHAR(256) NOT NULL, 
	value VARCHAR(256) NOT NULL, 
	PRIMARY KEY (arn, "key")
);
INSERT INTO "tags" VALUES('arn:aws:datasync:us-east-1:111122223333:location/loc-a3f7e2a0525424089','side','source');
CREATE INDEX ix_resources_kind ON resources (kind);
CREATE INDEX ix_executions_task_arn ON executions (task_arn);
CREATE INDEX ix_executions_status ON executions (status);
CREATE INDEX ix_executions_agent_arn ON executions (agent_arn);
COMMIT;
