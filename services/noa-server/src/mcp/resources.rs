//! The workspace's files as MCP resources, named by `file://` URIs of their paths in the
//! workspace. A URI is turned back into a workspace path and checked like any client path.

use crate::workspace::Workspace;
use rmcp::ErrorData;
use rmcp::model::{ListResourcesResult, ReadResourceResult, Resource, ResourceContents};

pub fn uri(workspace: &Workspace, relative: &str) -> String {
    format!("file://{}/{relative}", workspace.root().display())
}

pub fn list(workspace: &Workspace) -> ListResourcesResult {
    let resources = workspace
        .files()
        .into_iter()
        .map(|(relative, size)| {
            let mut resource = Resource::new(uri(workspace, &relative), relative.clone());
            resource.mime_type = Some(mime_type(&relative).into());
            resource.size = Some(size);
            resource
        })
        .collect();
    ListResourcesResult::with_all_items(resources)
}

pub fn read(workspace: &Workspace, uri_text: &str) -> Result<ReadResourceResult, ErrorData> {
    let prefix = format!("file://{}/", workspace.root().display());
    let relative = uri_text.strip_prefix(&prefix).ok_or_else(|| {
        ErrorData::resource_not_found(format!("no such resource: {uri_text}"), None)
    })?;
    let text = workspace.read_text(relative).map_err(|error| match error {
        crate::workspace::WorkspaceError::NotFound(_) => {
            ErrorData::resource_not_found(format!("no such resource: {uri_text}"), None)
        }
        other => ErrorData::invalid_params(other.to_string(), None),
    })?;
    let mut contents = ResourceContents::text(text, uri_text);
    if let ResourceContents::TextResourceContents {
        mime_type: kind, ..
    } = &mut contents
    {
        *kind = Some(mime_type(relative).into());
    }
    Ok(ReadResourceResult::new(vec![contents]))
}

fn mime_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("py") => "text/x-python",
        Some("md") => "text/markdown",
        Some("json") => "application/json",
        Some("html") => "text/html",
        Some("csv") => "text/csv",
        _ => "text/plain",
    }
}
