@rem Runs the Gradle version pinned in gradle\wrapper\gradle-wrapper.properties.
@rem gradle\wrapper\gradle-wrapper.jar is not committed: create it once with a Gradle 8.9+
@rem on PATH: cd android && gradle wrapper --gradle-version 8.10.2
@echo off
setlocal
set HERE=%~dp0
set JAR=%HERE%gradle\wrapper\gradle-wrapper.jar
if not exist "%JAR%" (
    echo gradlew: %JAR% is missing; run "gradle wrapper --gradle-version 8.10.2" in %HERE% once 1>&2
    exit /b 1
)
if defined JAVA_HOME (set JAVA=%JAVA_HOME%\bin\java.exe) else (set JAVA=java.exe)
"%JAVA%" %JAVA_OPTS% %GRADLE_OPTS% "-Dorg.gradle.appname=gradlew" -classpath "%JAR%" org.gradle.wrapper.GradleWrapperMain %*
exit /b %ERRORLEVEL%
